"""The MCP guard's lock file for the console: what is pinned, and what is held back pending
approval with `turnout mcp diff`'s words for it.

The guard's config is found as `turnout mcp` finds it: `$TURNOUT_MCP_CONFIG`, else
`turnout-mcp.yaml` in the gateway's working directory. Nothing is started: only the lock file
and what the proxy saw (its pending entries) are read.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from turnout.errors import TurnoutError

# As `turnout mcp` finds its config (turnout.mcp.cli, not imported: the MCP SDK loads with it).
CONFIG_ENV, DEFAULT_CONFIG = "TURNOUT_MCP_CONFIG", "turnout-mcp.yaml"


def guard_config_path() -> Path | None:
    path = os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    return Path(path) if Path(path).is_file() else None


def read() -> dict[str, Any]:
    """{"config", "lock", "servers": [...pinned], "held": [...], "problem"}; runs in a worker."""
    from turnout.mcp.commands import diff
    from turnout.mcp.config import load_guard_config
    from turnout.mcp.identity import describe_identity
    from turnout.mcp.lockfile import LockFile

    path = guard_config_path()
    if path is None:
        return {"config": None}
    try:
        config = load_guard_config(path)
        lock = LockFile.load(config.lock_path)
    except (TurnoutError, OSError, ValueError) as exc:
        return {"config": str(path), "problem": f"{type(exc).__name__}: {exc}"}
    servers = [
        {
            "server": name,
            "package": describe_identity(pin.package),
            "pinned_at": pin.pinned_at,
            "tools": sorted(pin.tools),
            "egress": sum(len(shapes) for shapes in pin.egress.values()),
        }
        for name, pin in sorted(lock.servers.items())
    ]
    held = []
    for name in sorted(config.servers):
        pending = lock.pending.get(name)
        if name in lock.servers and (
            pending is None or not (pending.observation or pending.egress)
        ):
            continue
        report = asyncio.run(diff(config, [name]))
        held.append({"server": name, "words": report.lines + report.errors})
    return {"config": str(path), "lock": str(config.lock_path), "servers": servers, "held": held}
