"""A real OTLP/HTTP trace receiver on loopback: decodes `ExportTraceServiceRequest` protobufs."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

KINDS = {
    PbSpan.SPAN_KIND_INTERNAL: "internal",
    PbSpan.SPAN_KIND_SERVER: "server",
    PbSpan.SPAN_KIND_CLIENT: "client",
}


@dataclass
class Received:
    """One span as it arrived on the wire."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int
    schema_url: str
    scope: str
    service: str | None = None
    links: list[Any] = field(default_factory=list)


def value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return attrs(v.kvlist_value.values)
    return getattr(v, which) if which else None


def attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        out[kv.key] = value(kv.value)
    return out


class OTLPReceiver:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self.spans: list[Received] = []
        self.requests = 0
        self.refuse: list[int] = []  # statuses to answer, one an export, before accepting again
        self.headers: list[dict[str, str]] = []  # each export's headers (lowercased), refused too
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._sock = sock
        scheme = "https" if ssl_context is not None else "http"
        self.endpoint = f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> OTLPReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._astart(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _astart(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock, ssl_context=self._ssl).start()

    async def _traces(self, request: web.Request) -> web.Response:
        raw = await request.read()
        with self._lock:
            self.headers.append({k.lower(): v for k, v in request.headers.items()})
            if self.refuse:
                return web.Response(status=self.refuse.pop(0))
        if request.headers.get("Content-Encoding") == "gzip" and raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)  # the server has not already (it does by default)
        if request.content_type != "application/x-protobuf":
            return web.Response(status=415)
        message = ExportTraceServiceRequest()
        message.ParseFromString(raw)
        got: list[Received] = []
        for rs in message.resource_spans:
            service = attrs(rs.resource.attributes).get("service.name")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append(
                        Received(
                            name=s.name,
                            kind=KINDS.get(s.kind, str(s.kind)),
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            trace_state=s.trace_state,
                            start_ns=s.start_time_unix_nano,
                            end_ns=s.end_time_unix_nano,
                            attributes=attrs(s.attributes),
                            events=[(e.name, attrs(e.attributes)) for e in s.events],
                            status_code=s.status.code,
                            schema_url=ss.schema_url or rs.schema_url,
                            scope=ss.scope.name,
                            service=service,
                        )
                    )
        with self._lock:
            self.spans.extend(got)
            self.requests += 1
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    def trace(self, trace_id: str) -> list[Received]:
        with self._lock:
            return sorted(
                (s for s in self.spans if s.trace_id == trace_id), key=lambda s: s.start_ns
            )

    def request_span(self, request_id: str) -> Received:
        with self._lock:
            found = [s for s in self.spans if s.attributes.get("turnout.request.id") == request_id]
        assert len(found) == 1, f"{len(found)} request spans for {request_id}"
        return found[0]
