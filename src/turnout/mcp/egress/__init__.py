"""Behaviour pinning: the shape of what a server sends out, per tool."""

from turnout.mcp.egress.recorder import EgressRecorder, Verdict
from turnout.mcp.egress.shapes import shape_of

__all__ = ["EgressRecorder", "Verdict", "shape_of"]
