"""Wire formats other than OpenAI's chat completions: parsed at the edge, rendered back there."""
