"""Server-sent events however the bytes arrive: a real loopback server writes one stream in
awkward pieces (a line split mid-word, several events in one write, CRLF line ends, comments,
named events, multi-line data, an event larger than any socket read), and the OpenAI backend
gives back the same chunks as when every event arrives in a write of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

from turnout.backends.base import Failure, Operation, UpstreamError, UpstreamRequest
from turnout.backends.http import MAX_EVENT_BYTES
from turnout.backends.openai_http import OpenAIHTTPBackend

BIG = "y" * 600_000  # longer than the HTTP client reads a line, and than any socket read


def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return orjson.dumps(body)


USAGE = orjson.dumps(
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
     "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
)  # fmt: skip
CONTENTS = ["Hel", "lo\nthere", BIG, "!"]


def plain() -> list[bytes]:
    """One event a write, `\\n` line ends: the shape most servers send."""
    events = [chunk(c) for c in CONTENTS] + [chunk(finish="stop"), USAGE, b"[DONE]"]
    return [b"data: " + e + b"\n\n" for e in events]


def awkward() -> list[bytes]:
    """The same events as one byte string, then cut where no event or line ends."""
    first, second, big, last = (chunk(c) for c in CONTENTS)
    body = (
        b": keep-alive\r\n\r\n"
        + b"event: message\r\ndata: " + first + b"\r\n\r\n"
        + b"data:" + second + b"\n\n"  # no space after the colon
        + b"id: 7\nretry: 100\n"  # fields SSE clients ignore
        + b"data: " + big + b"\n\n"
        + b"data: " + last + b"\n\n: another comment\n\n"
        + b"data: " + chunk(finish="stop") + b"\n\n"
        + b"data: " + USAGE + b"\n\ndata: [DONE]\n\n"
    )  # fmt: skip
    cuts = [3, 17, 40, 41, 120, 5_000, 70_000, 400_000, len(body) - 30, len(body) - 2]
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


async def serve(pieces: list[bytes]) -> AsyncIterator[str]:
    async def completions(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for piece in pieces:
            await resp.write(piece)
            await asyncio.sleep(0.005)  # each piece its own read, as far as the network goes
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


def streamed(pieces: Callable[[], list[bytes]]) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        async for url in serve(pieces()):
            backend = OpenAIHTTPBackend("up", url, "m")
            await backend.start()
            try:
                body = {"messages": [{"role": "user", "content": "hi"}]}
                request = UpstreamRequest(Operation.CHAT, body, "req-1")
                return [c.data async for c in backend.stream(request)]
            finally:
                await backend.close()
        raise AssertionError("the server did not start")

    return asyncio.run(run())


def test_awkwardly_cut_bytes_give_the_same_chunks_as_one_event_per_write() -> None:
    expected = streamed(plain)
    texts = [c["choices"][0]["delta"].get("content") for c in expected if c["choices"]]
    assert texts == [*CONTENTS, None]  # the 600 kB event came through whole
    assert expected[-1]["usage"]["total_tokens"] == 7
    assert streamed(awkward) == expected


def test_an_event_past_the_limit_is_a_malformed_answer_not_a_crash() -> None:
    def endless() -> list[bytes]:
        piece = b"z" * (1024 * 1024)
        return [b'data: {"choices": [{"delta": {"content": "'] + [piece] * (
            MAX_EVENT_BYTES // len(piece) + 1
        )

    with pytest.raises(UpstreamError) as caught:
        streamed(endless)
    assert caught.value.failure is Failure.MALFORMED_RESPONSE
    assert "over 32 MiB" in str(caught.value)
