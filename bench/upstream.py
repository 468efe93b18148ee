"""A fast OpenAI-compatible loopback upstream for the overhead benchmark.

It answers ``POST /v1/chat/completions`` at once, as JSON or as an SSE stream of a handful
of chunks (usage included), so that what a benchmark measures through a gateway is the
gateway and not this process. It is a raw asyncio protocol on top of ``httptools`` (the
parser uvicorn uses) and runs on uvloop when it is installed: one process, one thread.

Routes:
    POST /v1/chat/completions, /chat/completions   JSON, or SSE when ``"stream": true``
    POST /v1/completions, /completions              the same, as legacy text completions
    GET  /v1/models, /models                        the model list (one model)
    GET  /health, /readyz                           200 "ok"
Anything else is answered 404.

Run: ``python bench/upstream.py --port 18000`` (127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys
import time
from collections import deque
from typing import Any, cast

import httptools
import orjson

try:  # uvloop is optional but makes this process much cheaper
    import uvloop
except ImportError:  # pragma: no cover - depends on the environment
    uvloop = None  # type: ignore[assignment]

CONTENT_PIECES: tuple[str, ...] = ("Hello", " from", " the", " bench", " upstream.")
PROMPT_TOKENS = 8
_ids = itertools.count(1)

_REASONS: dict[int, bytes] = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
}


def _usage() -> dict[str, int]:
    completion = len(CONTENT_PIECES)
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion,
        "total_tokens": PROMPT_TOKENS + completion,
    }


def _head(status: int, headers: list[tuple[bytes, bytes]], keep_alive: bool) -> bytes:
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown"))]
    lines.extend(name + b": " + value for name, value in headers)
    if not keep_alive:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def plain_response(status: int, body: bytes, content_type: bytes, keep_alive: bool) -> bytes:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
    ]
    return _head(status, headers, keep_alive) + body


def completion_json(model: str) -> bytes:
    n = next(_ids)
    return orjson.dumps(
        {
            "id": f"chatcmpl-bench-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(CONTENT_PIECES)},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(),
            "system_fingerprint": "fp_bench",
        }
    )


def text_completion_json(model: str) -> bytes:
    return orjson.dumps(
        {
            "id": f"cmpl-bench-{next(_ids)}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "text": "".join(CONTENT_PIECES),
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(),
        }
    )


def _framed(payloads: list[dict[str, Any]]) -> list[bytes]:
    datas = [b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads]
    datas.append(b"data: [DONE]\n\n")
    return [b"%x\r\n%s\r\n" % (len(d), d) for d in datas]


def text_stream_events(model: str) -> list[bytes]:
    base: dict[str, Any] = {
        "id": f"cmpl-bench-{next(_ids)}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
    }
    payloads: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}]}
        for piece in CONTENT_PIECES
    ]
    payloads.append(
        {**base, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]}
    )
    payloads.append({**base, "choices": [], "usage": _usage()})
    return _framed(payloads)


def stream_events(model: str) -> list[bytes]:
    """The SSE events of one streamed completion, each already framed as an HTTP chunk."""
    n = next(_ids)
    base: dict[str, Any] = {
        "id": f"chatcmpl-bench-{n}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_bench",
    }
    payloads: list[dict[str, Any]] = [
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
    ]
    payloads.extend(
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}
            ],
        }
        for piece in CONTENT_PIECES
    )
    payloads.append(
        {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
    )
    payloads.append({**base, "choices": [], "usage": _usage()})
    return _framed(payloads)


_COMPLETION_PATHS = (
    b"/v1/chat/completions",
    b"/chat/completions",
    b"/v1/completions",
    b"/completions",
)
STREAM_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"transfer-encoding", b"chunked"),
]
MODELS_BODY = orjson.dumps(
    {
        "object": "list",
        "data": [{"id": "bench-model", "object": "model", "created": 0, "owned_by": "bench"}],
    }
)


class UpstreamProtocol(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection; responses are written in request order."""

    def __init__(self, chunk_gap: str) -> None:
        self.chunk_gap = chunk_gap
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.loop = asyncio.get_running_loop()
        # responses not yet fully written, oldest first (only ever >1 with pipelining)
        self.pending: deque[tuple[deque[bytes], bool]] = deque()

    # asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence a cast, not a check
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close()
        except httptools.HttpParserError:
            self._write(plain_response(400, b"bad request", b"text/plain", False))
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    # httptools callbacks ----------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        keep_alive = self.parser.should_keep_alive()
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        if path in _COMPLETION_PATHS:
            if method != b"POST":
                self._respond(
                    plain_response(405, b"method not allowed", b"text/plain", keep_alive),
                    keep_alive,
                )
                return
            self._chat(b"".join(self.body), keep_alive, text=b"chat" not in path)
        elif path in (b"/v1/models", b"/models") and method == b"GET":
            self._respond(
                plain_response(200, MODELS_BODY, b"application/json", keep_alive), keep_alive
            )
        elif path in (b"/health", b"/readyz", b"/") and method in (b"GET", b"HEAD"):
            self._respond(plain_response(200, b"ok", b"text/plain", keep_alive), keep_alive)
        else:
            self._respond(plain_response(404, b"not found", b"text/plain", keep_alive), keep_alive)

    # responses ----------------------------------------------------------------------
    def _chat(self, raw: bytes, keep_alive: bool, text: bool = False) -> None:
        try:
            req = orjson.loads(raw)
            if not isinstance(req, dict):
                raise ValueError("body is not an object")
        except (orjson.JSONDecodeError, ValueError):
            err = orjson.dumps(
                {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}}
            )
            self._respond(plain_response(400, err, b"application/json", keep_alive), keep_alive)
            return
        model = str(req.get("model") or "bench-model")
        if req.get("stream"):
            events = text_stream_events(model) if text else stream_events(model)
            head = _head(200, STREAM_HEADERS, keep_alive)
            if self.chunk_gap == "none":
                self._respond(head + b"".join(events) + b"0\r\n\r\n", keep_alive)
            else:
                # head and first event together, then one write per event
                events[0] = head + events[0]
                events.append(b"0\r\n\r\n")
                self._send(events, keep_alive)
        else:
            body = text_completion_json(model) if text else completion_json(model)
            self._respond(plain_response(200, body, b"application/json", keep_alive), keep_alive)

    def _respond(self, data: bytes, keep_alive: bool) -> None:
        self._send([data], keep_alive)

    def _send(self, parts: list[bytes], keep_alive: bool) -> None:
        """Queue one response; its parts go out one per event-loop turn, in order."""
        if not self.pending and len(parts) == 1:
            self._write(parts[0])
            if not keep_alive:
                self._close()
            return
        self.pending.append((deque(parts), keep_alive))
        if len(self.pending) == 1:
            self._pump()

    def _pump(self) -> None:
        if self.transport is None:
            self.pending.clear()
            return
        parts, keep_alive = self.pending[0]
        self._write(parts.popleft())
        if not parts:
            self.pending.popleft()
            if not keep_alive:
                self._close()
                self.pending.clear()
                return
        if self.pending:
            # the next part after one trip through the event loop, so a reader sees
            # several reads per stream, as from a real model server
            self.loop.call_soon(self._pump)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(host: str, port: int, chunk_gap: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(chunk_gap), host, port, backlog=4096, reuse_address=True
    )
    stop: asyncio.Future[None] = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    print(f"upstream listening on http://{host}:{port} (uvloop={uvloop is not None})", flush=True)
    async with server:
        await stop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18000)
    ap.add_argument(
        "--chunk-gap",
        choices=("yield", "none"),
        default="yield",
        help="'yield': one write per SSE event with an event-loop turn in between (default); "
        "'none': the whole stream in one write",
    )
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the bench upstream only listens on loopback")
    if uvloop is not None:
        uvloop.run(serve(args.host, args.port, args.chunk_gap))
    else:
        asyncio.run(serve(args.host, args.port, args.chunk_gap))
    return 0


if __name__ == "__main__":
    sys.exit(main())
