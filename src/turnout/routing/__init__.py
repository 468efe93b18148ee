"""Where a request runs: pure decisions over estimates, capabilities and privacy."""
