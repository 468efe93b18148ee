"""Real gateways on loopback and an in-memory span exporter, for the gateway's tests.

A module of its own (not conftest) so that packages of tests with their own conftest.py
cannot shadow it.
"""

from __future__ import annotations

import socket
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from turnout.config import parse_config
from turnout.gateway import Gateway, LayerFactory
from turnout.server.app import App

_EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
trace.set_tracer_provider(_provider)


def spans_of(request_id: str) -> list[ReadableSpan]:
    """The request span first, then its attempt spans, for one request id."""
    spans = _EXPORTER.get_finished_spans()
    root = [s for s in spans if (s.attributes or {}).get("turnout.request.id") == request_id]
    assert len(root) == 1, f"expected one request span for {request_id}, got {len(root)}"
    trace_id = root[0].context.trace_id
    children = [s for s in spans if s.parent and s.parent.span_id == root[0].context.span_id]
    assert all(c.context.trace_id == trace_id for c in children)
    return root + sorted(children, key=lambda s: s.start_time or 0)


class RunningGateway:
    def __init__(
        self, gateway: Gateway, port: int, server: uvicorn.Server, thread: threading.Thread
    ):
        self.gateway = gateway
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = self.url + "/v1"
        self._server = server
        self._thread = thread
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return (
            self.http.post(path, json=body, **kw)
            if body is not None
            else self.http.post(path, **kw)
        )

    def chat(self, **body: Any) -> httpx.Response:
        body.setdefault("messages", [{"role": "user", "content": "hi"}])
        return self.http.post("/v1/chat/completions", json=body)

    def record(self, request_id: str) -> dict[str, Any]:
        from turnout.store.query import get_request

        self.gateway.writer.flush()
        return get_request(self.gateway.config.store.url, request_id)

    def stop(self) -> None:
        self.http.close()
        self._server.should_exit = True
        self._thread.join(timeout=15)


def start_gateway(
    config_yaml: str,
    store: Path,
    wrap_backend: Callable[[str, Any], Any] | None = None,
    layers: Sequence[LayerFactory] = (),
) -> RunningGateway:
    text = textwrap.dedent(config_yaml)
    if "store:" not in text:
        text += f'\nstore: {{url: "sqlite:///{store}", flush_interval_s: 0.05}}\n'
    gateway = Gateway(parse_config(text, "test-config"), wrap_backend=wrap_backend, layers=layers)
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            App(gateway), loop="asyncio", http="httptools", lifespan="on", log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("gateway did not start")
        time.sleep(0.01)
    return RunningGateway(gateway, port, server, thread)
