"""turnout: a control plane for LLM traffic.

What a program that embeds turnout imports. Names load on first use (PEP 562), so `import turnout`
stays cheap: the command line imports it, and most commands never start the server stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name → the module that defines it
_EXPORTS = {
    "Config": "turnout.config",
    "load_config": "turnout.config",
    "parse_config": "turnout.config",
    "ConfigError": "turnout.config",
    "Gateway": "turnout.gateway",
    "App": "turnout.server.app",
    "serve": "turnout.server.serve",
    "Backend": "turnout.backends.base",
    "UpstreamRequest": "turnout.backends.base",
    "Completion": "turnout.backends.base",
    "StreamChunk": "turnout.backends.base",
    "Usage": "turnout.backends.base",
    "Failure": "turnout.backends.base",
    "UpstreamError": "turnout.backends.base",
    "TurnoutError": "turnout.errors",
    "ApiError": "turnout.errors",
}

__all__ = [
    "ApiError",
    "App",
    "Backend",
    "Completion",
    "Config",
    "ConfigError",
    "Failure",
    "Gateway",
    "StreamChunk",
    "TurnoutError",
    "UpstreamError",
    "UpstreamRequest",
    "Usage",
    "__version__",
    "load_config",
    "parse_config",
    "serve",
]

if TYPE_CHECKING:
    from turnout.backends.base import (
        Backend,
        Completion,
        Failure,
        StreamChunk,
        UpstreamError,
        UpstreamRequest,
        Usage,
    )
    from turnout.config import Config, ConfigError, load_config, parse_config
    from turnout.errors import ApiError, TurnoutError
    from turnout.gateway import Gateway
    from turnout.server.app import App
    from turnout.server.serve import serve


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'turnout' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
