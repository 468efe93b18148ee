"""Wire formats beyond chat completions: each parsed at the edge onto the one typed request."""
