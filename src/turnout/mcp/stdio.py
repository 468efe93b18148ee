"""The client side of the stdio proxy: JSON-RPC lines on the process's own stdin and stdout.

The SDK's `stdio_server` reads and writes through worker threads, a thread hop per message each
way; on the request path of every tool call that was most of the proxy's added latency. Here the
pipes are read and written by the event loop itself. Regular files (stdin redirected from a file)
cannot be watched that way: those fall back to the SDK's transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator
from typing import Any

import anyio
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import jsonrpc_message_adapter

_MAX_LINE = 64 * 1024 * 1024


@contextlib.asynccontextmanager
async def stdio_streams() -> AsyncIterator[tuple[Any, Any]]:
    if not (_pollable(0) and _pollable(1)):
        async with stdio_server() as streams:
            yield streams
        return
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.dup(0), os.dup(1)
    # From here on nothing but protocol reaches the client: a stray print (ours, a library's)
    # lands on stderr, and nobody else reads the client's requests off fd 0.
    saved_in, saved_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    reader = asyncio.StreamReader(limit=_MAX_LINE)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", buffering=0)
    )
    write_transport, write_protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(wire_out, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)
    to_relay, from_client = anyio.create_memory_object_stream[SessionMessage | Exception](32)
    to_client, from_relay = anyio.create_memory_object_stream[SessionMessage](32)

    async def pump_in() -> None:
        async with to_relay:
            while line := await reader.readline():
                if not line.strip():
                    continue
                try:
                    message = jsonrpc_message_adapter.validate_json(line, by_name=False)
                except ValueError as exc:
                    await to_relay.send(exc)
                    continue
                await to_relay.send(SessionMessage(message))

    async def pump_out() -> None:
        async with from_relay:
            async for item in from_relay:
                data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                writer.write(data.encode() + b"\n")
                await writer.drain()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump_in)
            tg.start_soon(pump_out)
            try:
                yield from_client, to_client
            finally:
                await to_client.aclose()
                with anyio.move_on_after(2):
                    await writer.drain()
                tg.cancel_scope.cancel()
    finally:
        read_transport.close()
        write_transport.close()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)


def _pollable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)
