"""ASGI plumbing every route shares: a bounded body read, JSON out, a client that leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from turnout.errors import TurnoutError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADER = (b"content-type", b"application/json")
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def header_list(extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in extra.items()]


async def send_json(
    send: Send, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [JSON_HEADER, *header_list(headers or {})],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class TooLarge(TurnoutError):
    pass


async def read_body(receive: Receive, limit: int, timeout_s: float) -> bytes:
    """The whole body; raises TimeoutError when it takes longer than `timeout_s` to arrive.

    A bare timer rather than `asyncio.timeout`: it runs on every request, and costs a fifth.
    """
    task = asyncio.current_task()
    assert task is not None
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout_s, expire)
    try:
        return await read_all(receive, limit)
    except asyncio.CancelledError:
        if fired and task.uncancel() == 0:
            raise TimeoutError from None
        raise
    finally:
        timer.cancel()


async def read_all(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def watch_disconnect(receive: Receive, task: asyncio.Task[Any], gone: asyncio.Event) -> None:
    """Cancel the request's task when the client goes away, so its upstream work stops too."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            task.cancel()
            return


def header_map(scope: Scope) -> dict[str, str]:
    """The request's headers by name (ASGI gives them lowercased, as bytes)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
