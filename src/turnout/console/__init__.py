"""The operator console: read-only web pages at `/ui/` over the record and the running gateway."""

from turnout.console.routes import PREFIX, Console

__all__ = ["PREFIX", "Console"]
