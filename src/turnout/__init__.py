"""turnout: a control plane for LLM traffic."""

__version__ = "0.1.0"
