"""Running the app on uvicorn with turnout's connection limits and a raised open-file limit."""

from __future__ import annotations

import contextlib
import logging
import resource
import sys
from typing import Any

from turnout.config.schema import ServerConfig
from turnout.server.connections import ConnectionLimits, GuardedProtocol

log = logging.getLogger("turnout.server")

STARTUP_FAILURE = 3  # uvicorn's exit code when the app's start-up failed

# Descriptors kept for everything that is not a client connection: the store, log files, model
# files, the listening socket, upstream connections of requests beyond the first.
RESERVED_FDS = 256
DEFAULT_CAP_CEILING = 8192  # ~7 KiB each with a half-sent head (measured): ~60 MiB at the cap
_NR_OPEN_FALLBACK = 1 << 20  # Linux refuses an infinite RLIMIT_NOFILE; this is its usual nr_open


def raise_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one where allowed; return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _NR_OPEN_FALLBACK if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning(
                "open-file limit stays at %d: raising it to %d failed (%s)", soft, target, exc
            )
            return soft
        log.info("open-file limit raised from %d to %d (the hard limit)", soft, target)
        return target
    return _NR_OPEN_FALLBACK if soft == resource.RLIM_INFINITY else soft


def connection_cap(configured: int | None, file_limit: int) -> int:
    """The most client connections to hold open, always leaving RESERVED_FDS descriptors free."""
    room = max(file_limit - RESERVED_FDS, 1)
    if configured is None:
        # Half: a client connection with a request in flight usually holds an upstream one too.
        return max(1, min(DEFAULT_CAP_CEILING, room // 2))
    if configured > room:
        log.warning(
            "server.max_connections %d lowered to %d: the open-file limit is %d and %d "
            "descriptors are kept for the store, logs and upstream connections",
            configured,
            room,
            file_limit,
            RESERVED_FDS,
        )
        return room
    return configured


def limits_for(server: ServerConfig, file_limit: int) -> ConnectionLimits:
    return ConnectionLimits(
        header_read_timeout_s=server.header_read_timeout_s,
        body_read_timeout_s=server.body_read_timeout_s,
        max_header_bytes=server.max_header_bytes,
        max_connections=connection_cap(server.max_connections, file_limit),
    )


def uvicorn_config(app: Any, server: ServerConfig, host: str, port: int) -> Any:
    """The uvicorn settings of one serving process, logging its connection limits."""
    import uvicorn

    file_limit = raise_file_limit()
    limits = limits_for(server, file_limit)
    log.info(
        "connections: at most %d open (open-file limit %d); head within %g s, body within %g s, "
        "idle keep-alive %g s",
        limits.max_connections,
        file_limit,
        limits.header_read_timeout_s,
        limits.body_read_timeout_s,
        server.keepalive_timeout_s,
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=GuardedProtocol.with_limits(limits),
        timeout_keep_alive=server.keepalive_timeout_s,  # type: ignore[arg-type]
        lifespan="on",
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=5,
    )


def serve(app: Any, server: ServerConfig, host: str, port: int) -> None:
    import uvicorn

    instance = uvicorn.Server(uvicorn_config(app, server, host, port))
    with contextlib.suppress(KeyboardInterrupt):
        instance.run()
    if not instance.started:
        sys.exit(STARTUP_FAILURE)
