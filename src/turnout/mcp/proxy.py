"""`turnout mcp proxy`: the guard between a client and its servers, over stdio or HTTP.

Over stdio the proxy stands in for one server: a client config names `turnout mcp proxy SERVER`
where it named the server. Over streamable HTTP one proxy serves every configured server, each at
`/mcp/SERVER`. Each client session gets its own server process (as a stdio client would) and its
own relay; the guard (the lock and what was seen) is shared by the sessions of a server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from turnout.mcp.config import GuardConfig
from turnout.mcp.guard import Guard
from turnout.mcp.record import Recorder
from turnout.mcp.relay import Relay
from turnout.mcp.stdio import stdio_streams

log = logging.getLogger("turnout.mcp.proxy")

UNSUPPORTED_PROTOCOL_VERSION = -32022
SESSION_IDLE_S = 30 * 60


async def serve_stdio(config: GuardConfig, server: str | None) -> None:
    spec = config.server(server)
    recorder = Recorder(config.store_url, config.record_bodies, config.flush_interval_s)
    recorder.open()
    try:
        async with stdio_streams() as (read, write):
            await Relay(spec, Guard(spec, config.lock_path), recorder, transport="stdio").run(
                read, write
            )
    finally:
        recorder.close()


class HttpFront:
    """An ASGI app: streamable HTTP sessions at /mcp/SERVER, each relayed to its own server."""

    def __init__(self, config: GuardConfig):
        self.config = config
        self.guards = {name: Guard(spec, config.lock_path) for name, spec in config.servers.items()}
        self.recorder = Recorder(config.store_url, config.record_bodies, config.flush_interval_s)
        self._sessions: dict[str, tuple[str, StreamableHTTPServerTransport]] = {}
        self._tg: TaskGroup | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.recorder.open()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                yield
                tg.cancel_scope.cancel()
        finally:
            self._tg = None
            self.recorder.close()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"].rstrip("/")
        if path == "/healthz":
            await _plain(send, 200, {"ok": True, "servers": sorted(self.config.servers)})
            return
        name = path.removeprefix("/mcp/") if path.startswith("/mcp/") else None
        if name not in self.config.servers:
            known = ", ".join(f"/mcp/{n}" for n in self.config.servers)
            await _plain(send, 404, {"error": f"no MCP server at {path}; serving {known}"})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        version = headers.get(MCP_PROTOCOL_VERSION_HEADER.lower())
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            # The guard speaks the initialize handshake; this error makes clients fall back to it.
            error = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {
                    "code": UNSUPPORTED_PROTOCOL_VERSION,
                    "message": f"protocol version {version} is not supported by turnout's proxy",
                    "data": {"supported": list(HANDSHAKE_PROTOCOL_VERSIONS), "requested": version},
                },
            }
            await _plain(send, 400, error)
            return
        session_id = headers.get(MCP_SESSION_ID_HEADER.lower())
        if session_id is not None:
            found = self._sessions.get(session_id)
            if found is None or found[0] != name:
                await _plain(
                    send,
                    404,
                    {
                        "jsonrpc": "2.0",
                        "id": None,
                        "error": {"code": -32600, "message": "Session not found"},
                    },
                )
                return
            transport = found[1]
            await transport.handle_request(scope, receive, send)
            if transport.is_terminated:
                self._sessions.pop(session_id, None)
            return
        if scope["method"] != "POST":
            await _plain(send, 405, {"error": "open a session with a POST of `initialize`"})
            return
        await self._open_session(name, scope, receive, send)

    async def _open_session(self, name: str, scope: Any, receive: Any, send: Any) -> None:
        session_id = uuid.uuid4().hex
        # An abandoned session would keep its server process forever: idle ones are closed.
        transport = StreamableHTTPServerTransport(
            mcp_session_id=session_id, idle_timeout=SESSION_IDLE_S
        )
        self._sessions[session_id] = (name, transport)
        spec = self.config.servers[name]
        relay = Relay(spec, self.guards[name], self.recorder, transport="http")

        async def run(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            try:
                async with transport.connect() as (read, write):
                    task_status.started()
                    with transport.idle_scope or anyio.CancelScope():
                        await relay.run(read, write)
            except Exception:
                log.exception("session %s of server '%s' failed", session_id, name)
            finally:
                self._sessions.pop(session_id, None)
                with anyio.CancelScope(shield=True):
                    await transport.terminate()

        assert self._tg is not None, "serve the app inside HttpFront.running()"
        await self._tg.start(run)
        await transport.handle_request(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        async with self.running():
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            for _sid, (_name, transport) in list(self._sessions.items()):
                with contextlib.suppress(Exception):
                    await transport.terminate()
        await send({"type": "lifespan.shutdown.complete"})


async def _plain(send: Any, status: int, body: Any) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def serve_http(config: GuardConfig, host: str, port: int) -> None:
    import uvicorn

    logging.getLogger("turnout").info(
        "turnout mcp proxy on http://%s:%d: %s",
        host,
        port,
        ", ".join(f"/mcp/{n}" for n in config.servers),
    )
    uvicorn.run(
        HttpFront(config),
        host=host,
        port=port,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def main_stdio(config: GuardConfig, server: str | None) -> int:
    try:
        # uvloop: each tool call crosses the event loop a dozen times on its way through.
        anyio.run(serve_stdio, config, server, backend_options={"use_uvloop": _has_uvloop()})
    except KeyboardInterrupt:
        return 130
    finally:
        sys.stderr.flush()
    return 0
