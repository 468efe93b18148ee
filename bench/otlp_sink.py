"""A tiny OTLP/HTTP sink on 127.0.0.1 for the overhead benchmark.

turnout exports spans over OTLP/HTTP when `telemetry.otlp_endpoint` is set; the benchmark
points it here so that tracing is on, as in a deployment, without a collector. It answers
``POST /v1/traces`` with 200 (an empty protobuf `ExportTraceServiceResponse`) and counts the
exports and their bytes, which ``GET /stats`` returns as JSON, so a run can show that spans
really left the gateway. ``GET /health`` answers 200.

Run: ``python bench/otlp_sink.py --port 4318``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import cast

import httptools

try:
    import uvloop
except ImportError:  # pragma: no cover - depends on the environment
    uvloop = None  # type: ignore[assignment]

STATS = {"exports": 0, "bytes": 0, "other": 0}


def response(status: bytes, body: bytes, content_type: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


class SinkProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.size = b"", 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.size += len(body)

    def on_message_complete(self) -> None:
        method, path = self.parser.get_method(), self.url.split(b"?", 1)[0]
        if method == b"POST" and path == b"/v1/traces":
            STATS["exports"] += 1
            STATS["bytes"] += self.size
            out = response(b"200 OK", b"", b"application/x-protobuf")
        elif method == b"GET" and path == b"/stats":
            out = response(b"200 OK", json.dumps(STATS).encode(), b"application/json")
        elif method == b"GET" and path == b"/health":
            out = response(b"200 OK", b"ok", b"text/plain")
        else:
            STATS["other"] += 1
            out = response(b"404 Not Found", b"", b"text/plain")
        if self.transport is not None:
            self.transport.write(out)


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(SinkProtocol, "127.0.0.1", port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=4318)
    args = ap.parse_args()
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main(args.port))
