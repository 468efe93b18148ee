"""The guard's side of a connection to one real server: launch it, speak raw JSON-RPC to it.

Messages are kept as the SDK's JSON-RPC envelopes with their params and results as plain dicts,
so what a server sends reaches the client unchanged and the guard hashes exactly what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TextIO

import anyio
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.message import SessionMessage
from mcp_types import (
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
)
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from turnout.errors import TurnoutError
from turnout.mcp.config import ServerSpec

log = logging.getLogger("turnout.mcp")

CLIENT_INFO = {"name": "turnout-mcp-guard", "version": "0.1.0"}
# What `lock`, `scan` and `approve` declare: servers hide tools from clients that cannot use them,
# and a lock made by a client that can do less than the real one would flag those tools as new.
BROAD_CAPABILITIES: dict[str, Any] = {
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
    "roots": {"listChanged": False},
}


class UpstreamError(TurnoutError):
    """The server answered a request with a JSON-RPC error."""

    def __init__(self, error: dict[str, Any]):
        super().__init__(f"{error.get('message')} (code {error.get('code')})")
        self.error = error


class UpstreamClosed(TurnoutError):
    """The connection to the server ended before it answered."""


def launch_env(spec: ServerSpec, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a server starts with, on top of the SDK's short safe list (PATH, HOME …):
    only what the config names. A secret in the guard's own environment stays there unless
    `guard.pass_env` lists it."""
    passed = {k: os.environ[k] for k in spec.pass_env if k in os.environ}
    return passed | spec.env | (extra or {})


@contextlib.asynccontextmanager
async def open_transport(
    spec: ServerSpec, *, env_extra: dict[str, str] | None = None, errlog: TextIO | None = None
) -> AsyncIterator[tuple[Any, Any]]:
    if spec.transport == "stdio":
        assert spec.command is not None
        params = StdioServerParameters(
            command=spec.command,
            args=list(spec.args),
            env=launch_env(spec, env_extra),
            cwd=spec.cwd,
        )
        async with stdio_client(params, errlog=_with_fileno(errlog or sys.stderr)) as streams:
            yield streams
    else:
        assert spec.url is not None
        async with (
            create_mcp_http_client(headers=spec.headers or None) as http,
            streamable_http_client(spec.url, http_client=http) as streams,
        ):
            yield streams


def _with_fileno(stream: TextIO) -> TextIO:
    """The server's stderr goes to ours; a captured stream (tests, embedding) has no fd to give."""
    try:
        stream.fileno()
    except (OSError, ValueError, AttributeError):
        return sys.__stderr__ or stream
    return stream


OnMessage = Callable[[SessionMessage], Awaitable[None]]


class UpstreamLink:
    """Requests we send get fresh integer ids and a future; everything else the server sends
    (its requests, its notifications) goes to `on_message`."""

    def __init__(self, read: Any, write: Any, on_message: OnMessage):
        self._read = read
        self._write = write
        self._on_message = on_message
        self._pending: dict[int, asyncio.Future[JSONRPCResponse | JSONRPCError]] = {}
        self._next_id = 0
        self.closed = asyncio.Event()

    async def run(self) -> None:
        try:
            async for item in self._read:
                if isinstance(item, Exception):
                    log.warning("server sent an unreadable message: %s", item)
                    continue
                msg = item.message
                if isinstance(msg, JSONRPCResponse | JSONRPCError) and msg.id in self._pending:
                    future = self._pending.pop(msg.id)
                    if not future.done():
                        future.set_result(msg)
                    continue
                await self._on_message(item)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            pass
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(UpstreamClosed("the server closed the connection"))
            self._pending.clear()

    async def start(
        self, method: str, params: dict[str, Any] | None
    ) -> tuple[int, asyncio.Future[JSONRPCResponse | JSONRPCError]]:
        if self.closed.is_set():
            raise UpstreamClosed("the server is not connected")
        self._next_id += 1
        rid = self._next_id
        future: asyncio.Future[JSONRPCResponse | JSONRPCError] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[rid] = future
        # An absent `params` must stay absent: `"params": null` is dropped unanswered by some
        # servers (the TypeScript SDK's schema rejects it).
        request = JSONRPCRequest(jsonrpc="2.0", id=rid, method=method)
        if params is not None:
            request.params = params
        try:
            await self._write.send(SessionMessage(request))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._pending.pop(rid, None)
            raise UpstreamClosed("the server is not connected") from None
        return rid, future

    def forget(self, rid: int) -> None:
        future = self._pending.pop(rid, None)
        if future is not None and not future.done():
            future.cancel()

    async def call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float | None = 30.0
    ) -> dict[str, Any]:
        """One request, its result as a dict; a JSON-RPC error raises `UpstreamError`."""
        rid, future = await self.start(method, params)
        try:
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self.forget(rid)
            await self.notify("notifications/cancelled", {"requestId": rid, "reason": "timeout"})
            raise
        if isinstance(reply, JSONRPCError):
            raise UpstreamError(reply.error.model_dump(exclude_none=True))
        return reply.result

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        note = JSONRPCNotification(jsonrpc="2.0", method=method)
        if params is not None:
            note.params = params
        await self.send(note)

    async def send(self, message: JSONRPCMessage) -> None:
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._write.send(SessionMessage(message))

    async def list_tools(self, timeout: float | None = 30.0) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(1000):  # a server whose cursors never end is not followed forever
            result = await self.call("tools/list", {"cursor": cursor} if cursor else None, timeout)
            tools += [t for t in result.get("tools") or [] if isinstance(t, dict)]
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return tools


def initialize_params(capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "protocolVersion": LATEST_HANDSHAKE_VERSION,
        "capabilities": capabilities if capabilities is not None else BROAD_CAPABILITIES,
        "clientInfo": CLIENT_INFO,
    }
