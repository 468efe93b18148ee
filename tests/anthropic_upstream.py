"""A scriptable Anthropic Messages API upstream for gateway tests.

A real aiohttp server on 127.0.0.1 in a background thread, speaking `/v1/messages` (JSON and SSE)
and `/v1/messages/count_tokens`. Each message request consumes one scripted `Turn` (FIFO), falling
back to `default`; a turn can answer with an error status, break its stream, or fail mid-stream.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class Turn:
    """What the upstream does for one `/v1/messages` request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    text: str = "Hello from Anthropic."
    tool_uses: list[dict[str, Any]] = field(default_factory=list)  # {name, input[, id]}
    stop_reason: str | None = None  # None: tool_use if tool_uses, else end_turn
    stop_sequence: str | None = None
    input_tokens: int = 11
    output_tokens: int = 7
    cache_read_input_tokens: int = 0
    error_message: str | None = None
    break_after_deltas: int | None = None  # close the connection after this many text deltas
    error_after_deltas: int | None = None  # an `error` event (overloaded) after this many


@dataclass
class Seen:
    path: str
    headers: dict[str, str]  # lowercased keys
    body: dict[str, Any]


def _words(text: str) -> list[str]:
    out: list[str] = []
    for i, word in enumerate(text.split(" ")):
        out.append(word if i == 0 else " " + word)
    return [w for w in out if w]


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class AnthropicUpstream:
    def __init__(self, default: Turn | None = None) -> None:
        self.default = default or Turn()
        self.requests: list[Seen] = []
        self.base_url = ""
        self._turns: deque[Turn] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    def script(self, *turns: Turn) -> None:
        with self._lock:
            self._turns.extend(turns)

    def start(self) -> AnthropicUpstream:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="anthropic-upstream", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        asyncio.run_coroutine_threadsafe(self._astart(), loop).result(timeout=10)
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> AnthropicUpstream:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _astart(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self._runner, sock).start()

    def _seen(self, request: web.Request, body: dict[str, Any]) -> Turn:
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            self.requests.append(Seen(request.path, headers, body))
            return self._turns.popleft() if self._turns else self.default

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [], "has_more": False})

    async def _count(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self._seen(request, body)
        return web.json_response({"input_tokens": len(orjson.dumps(body["messages"])) // 4})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        turn = self._seen(request, body)
        if turn.status != 200:
            kind = _ERRORS.get(turn.status, "api_error")
            message = turn.error_message or f"scripted {kind}"
            err = {"type": "error", "error": {"type": kind, "message": message}}
            return web.json_response(err, status=turn.status, headers=turn.headers)
        if body.get("stream"):
            return await self._stream(request, turn)
        return web.json_response(self._message(turn))

    def _uses(self, turn: Turn) -> list[dict[str, Any]]:
        return [
            {"type": "tool_use", "id": u.get("id", f"toolu_{i:02d}"), "name": u["name"],
             "input": u["input"]}
            for i, u in enumerate(turn.tool_uses)
        ]  # fmt: skip

    def _stop(self, turn: Turn) -> str:
        return turn.stop_reason or ("tool_use" if turn.tool_uses else "end_turn")

    def _usage(self, turn: Turn) -> dict[str, int]:
        return {
            "input_tokens": turn.input_tokens,
            "output_tokens": turn.output_tokens,
            "cache_read_input_tokens": turn.cache_read_input_tokens,
            "cache_creation_input_tokens": 0,
        }

    def _message(self, turn: Turn) -> dict[str, Any]:
        content = [{"type": "text", "text": turn.text}] if turn.text else []
        return {
            "id": "msg_upstream",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": content + self._uses(turn),
            "stop_reason": self._stop(turn),
            "stop_sequence": turn.stop_sequence,
            "usage": self._usage(turn),
        }

    async def _stream(self, request: web.Request, turn: Turn) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        start = {**self._message(turn), "content": [], "stop_reason": None}
        start["usage"] = {**self._usage(turn), "output_tokens": 1}
        await resp.write(_sse("message_start", {"message": start}) + _sse("ping", {}))
        index = 0
        if turn.text:
            block = {"index": 0, "content_block": {"type": "text", "text": ""}}
            await resp.write(_sse("content_block_start", block))
            for n, word in enumerate(_words(turn.text)):
                if n == turn.break_after_deltas:
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                if n == turn.error_after_deltas:
                    err = {"type": "overloaded_error", "message": "Overloaded"}
                    await resp.write(_sse("error", {"error": err}))
                    return resp
                delta = {"index": 0, "delta": {"type": "text_delta", "text": word}}
                await resp.write(_sse("content_block_delta", delta))
            await resp.write(_sse("content_block_stop", {"index": 0}))
            index = 1
        for use in self._uses(turn):
            block = {"index": index, "content_block": {**use, "input": {}}}
            await resp.write(_sse("content_block_start", block))
            args = orjson.dumps(use["input"]).decode()
            for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
                delta = {
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                }
                await resp.write(_sse("content_block_delta", delta))
            await resp.write(_sse("content_block_stop", {"index": index}))
            index += 1
        end = {"stop_reason": self._stop(turn), "stop_sequence": turn.stop_sequence}
        usage = {"output_tokens": turn.output_tokens}
        await resp.write(_sse("message_delta", {"delta": end, "usage": usage}))
        await resp.write(_sse("message_stop", {}))
        await resp.write_eof()
        return resp
