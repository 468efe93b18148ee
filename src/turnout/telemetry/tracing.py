"""OpenTelemetry spans after the GenAI semantic conventions, opened while the request runs.

Each upstream call is a GenAI span that exists while the call runs, so its context travels
upstream (`traceparent`); the request span is turnout's own (HTTP server and `turnout.*`
attributes, lifecycle transitions as events) and carries no GenAI usage, so a backend summing
GenAI spans counts each token once. With no tracer provider the gateway holds no Tracer at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from turnout import __version__
from turnout.config import DeploymentConfig, TelemetryConfig
from turnout.lifecycle.run import Attempt, Run
from turnout.telemetry.calls import CallSpan, call_attributes
from turnout.telemetry.content import ContentCapture

# The GenAI conventions as the last semantic-conventions release that carries them defines them.
SEMCONV_VERSION = "1.41.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

_OK_OUTCOMES = frozenset({"completed", "truncated"})
# Encoding a batch for export holds the interpreter lock, and the event loop waits for it: the
# SDK's 512 spans a batch stalled requests for tens of ms (p99 at c=1 about 30 ms, 13 with 64).
EXPORT_BATCH_SPANS = 64
_ROUTES = {
    "chat.completions": "/v1/chat/completions",
    "completions": "/v1/completions",
    "responses": "/v1/responses",
    "messages": "/v1/messages",
}
_propagator = TraceContextTextMapPropagator()


def tracing_enabled() -> bool:
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def event_attr(value: Any) -> Any:
    """Scalars as they are; lists and maps as JSON (what a backend can parse back)."""
    if isinstance(value, str | bool | int | float):
        return value
    return orjson.dumps(value, default=str).decode()


class _Trace:
    """One request's spans: the request span and the upstream call under way."""

    __slots__ = ("call", "root")

    def __init__(self, root: Span) -> None:
        self.root = root
        self.call: CallSpan | None = None


class Tracer:
    """Opens and ends a gateway's spans; `call` is the hook the lifecycle uses per attempt."""

    def __init__(
        self,
        provider: trace.TracerProvider,
        deployments: Mapping[str, DeploymentConfig],
        content: ContentCapture | None = None,
        *,
        owned: bool = False,
    ) -> None:
        self._provider = provider
        self._owned = owned
        self._tracer = provider.get_tracer("turnout", __version__, schema_url=SCHEMA_URL)
        self._deployments = deployments
        self._content = content
        self._open: dict[str, _Trace] = {}

    @classmethod
    def for_config(
        cls,
        telemetry: TelemetryConfig,
        deployments: Mapping[str, DeploymentConfig],
        content: ContentCapture | None = None,
    ) -> Tracer | None:
        """Export over OTLP/HTTP when an endpoint is configured; else use the process's tracer
        provider if the application embedding turnout set one; else None (tracing off)."""
        if telemetry.otlp_endpoint:
            provider = _otlp_provider(telemetry.otlp_endpoint, telemetry.service_name)
            return cls(provider, deployments, content, owned=True)
        if tracing_enabled():
            return cls(trace.get_tracer_provider(), deployments, content)
        return None

    def call(self, run: Run, attempt: Attempt, body: Mapping[str, Any]) -> CallSpan:
        """The GenAI span of one upstream call, open from now until `CallSpan.end`."""
        t = self._open.get(run.id)
        if t is None:
            t = self._open[run.id] = _Trace(self._request_span(run))
        if t.call is not None:  # ended on every path already; this is a guard, not a path
            t.call.end(run.attempts[t.call.number - 1], None, ended_at=attempt.started)
        dep = self._deployments[attempt.deployment]
        attrs = call_attributes(run, attempt, dep, body)
        if self._content is not None:
            attrs.update(self._content.inputs(body))
        span = self._tracer.start_span(
            f"{attrs['gen_ai.operation.name']} {dep.model}",
            context=trace.set_span_in_context(t.root),
            kind=SpanKind.INTERNAL if dep.kind == "embedded" else SpanKind.CLIENT,
            start_time=_ns(attempt.started),
            attributes=attrs,
        )
        headers: dict[str, str] = {}
        _propagator.inject(headers, context=trace.set_span_in_context(span))
        t.call = CallSpan(span, attempt.number, headers, self._content)
        return t.call

    def finished(self, run: Run) -> None:
        """The request ended: its open call (a cancelled one) ends, then the request span."""
        if run.ended is None:
            return
        t = self._open.pop(run.id, None)
        root = t.root if t is not None else self._request_span(run)
        if t is not None and t.call is not None:  # the client went away during the call
            t.call.end(run.attempts[t.call.number - 1], None, ended_at=run.ended)
        _finish_request_span(root, run)

    def _request_span(self, run: Run) -> Span:
        parent = _propagator.extract(run.client) if "traceparent" in run.client else None
        route = _ROUTES.get(run.wire)
        attrs: dict[str, Any] = {
            "http.request.method": "POST",
            "turnout.request.id": run.id,
            "turnout.model": run.model,
            "turnout.operation": run.operation,
            "turnout.stream": run.stream,
        }
        if route is not None:
            attrs["http.route"] = attrs["url.path"] = route
        return self._tracer.start_span(
            f"POST {route}" if route else "POST",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=_ns(run.started),
            attributes=attrs,
        )

    def force_flush(self, timeout_ms: int = 10_000) -> bool:
        flush = getattr(self._provider, "force_flush", None)
        return bool(flush(timeout_ms)) if flush is not None else True

    def shutdown(self) -> None:
        """Export what is pending; only a provider this Tracer made is shut down."""
        if self._owned and isinstance(self._provider, TracerProvider):
            self._provider.shutdown()


def _finish_request_span(span: Span, run: Run) -> None:
    assert run.ended is not None
    outcome = run.outcome.value if run.outcome else "unfinished"
    span.set_attributes(
        {
            "turnout.outcome": outcome,
            "turnout.attempts": len(run.attempts),
            "turnout.usage.input_tokens": run.prompt_tokens,
            "turnout.usage.output_tokens": run.completion_tokens,
            "turnout.cost_usd": run.cost_usd,
        }
    )
    if run.http_status is not None:
        span.set_attribute("http.response.status_code", run.http_status)
    if run.tenant is not None:
        span.set_attribute("turnout.tenant", run.tenant)
    if run.key_id is not None:  # the key's id, never its secret
        span.set_attribute("turnout.key.id", run.key_id)
    intent = run.attrs.get("intent")
    if isinstance(intent, dict):
        span.set_attribute("turnout.intent.signals", ",".join(intent.get("signals") or ()))
        if isinstance(intent.get("missed"), dict):
            missed = str(intent["missed"].get("request_id"))
            span.set_attribute("turnout.intent.missed_request_id", missed)
    for event in run.events:
        span.add_event(
            f"turnout.{event.state.value}",
            {f"turnout.{k}": event_attr(v) for k, v in event.attrs.items() if v is not None},
            timestamp=_ns(event.at),
        )
    if outcome not in _OK_OUTCOMES:
        span.set_status(Status(StatusCode.ERROR, run.error or outcome))
        span.set_attribute("error.type", outcome)
    span.end(end_time=_ns(run.ended))


def _otlp_provider(endpoint: str, service_name: str) -> TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from turnout.telemetry.otlp import OTLPExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    provider.add_span_processor(
        BatchSpanProcessor(OTLPExporter(url), max_export_batch_size=EXPORT_BATCH_SPANS)
    )
    return provider
