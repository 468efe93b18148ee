"""`turnout mcp scan`."""
