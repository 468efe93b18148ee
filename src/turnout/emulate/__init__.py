"""`turnout emulate`: an OpenAI-compatible server that times its answers like a GPU instance."""
