"""OpenTelemetry spans after the GenAI semantic conventions, built from the finished Run.

Spans are written when a request ends, from the Run's timestamps, so the request path pays
nothing for tracing while it runs and nothing at all when no tracer provider is configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from turnout.config import DeploymentConfig
from turnout.lifecycle.run import Run

_OK_OUTCOMES = frozenset({"completed", "truncated"})
_propagator = TraceContextTextMapPropagator()


def setup_tracing(otlp_endpoint: str | None, service_name: str) -> None:
    """Export spans over OTLP/HTTP when an endpoint is configured."""
    if not otlp_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    endpoint = otlp_endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)


def tracing_enabled() -> bool:
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _attr(value: Any) -> Any:
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return str(value)


def emit_spans(
    run: Run, deployments: Mapping[str, DeploymentConfig], headers: Mapping[str, str]
) -> None:
    if run.ended is None:
        return
    tracer = trace.get_tracer("turnout")
    parent = _propagator.extract(dict(headers)) if "traceparent" in headers else None
    op = "chat" if run.operation == "chat" else "text_completion"
    body = run.request_body if isinstance(run.request_body, dict) else {}
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": op,
        "gen_ai.request.model": run.model,
        "turnout.request.id": run.id,
        "turnout.outcome": run.outcome.value if run.outcome else "unfinished",
        "turnout.attempts": len(run.attempts),
        "gen_ai.usage.input_tokens": run.prompt_tokens,
        "gen_ai.usage.output_tokens": run.completion_tokens,
        "turnout.cost_usd": run.cost_usd,
    }
    intent = run.attrs.get("intent")
    if isinstance(intent, dict):
        attrs["turnout.intent.signals"] = ",".join(intent.get("signals") or ())
        if isinstance(intent.get("missed"), dict):
            attrs["turnout.intent.missed_request_id"] = str(intent["missed"].get("request_id"))
    for key, name in (
        ("max_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("seed", "seed"),
    ):
        if isinstance(body.get(key), int | float) and not isinstance(body.get(key), bool):
            attrs[f"gen_ai.request.{name}"] = body[key]
    span = tracer.start_span(
        f"{op} {run.model}",
        context=parent,
        kind=SpanKind.SERVER,
        start_time=_ns(run.started),
        attributes=attrs,
    )
    for event in run.events:
        span.add_event(
            f"turnout.{event.state.value}",
            {f"turnout.{k}": _attr(v) for k, v in event.attrs.items()},
            timestamp=_ns(event.at),
        )
    ctx = trace.set_span_in_context(span)
    for a in run.attempts:
        dep = deployments.get(a.deployment)
        upstream_model = dep.model if dep else a.deployment
        a_attrs: dict[str, Any] = {
            "gen_ai.operation.name": op,
            "gen_ai.request.model": upstream_model,
            "gen_ai.provider.name": "llama.cpp" if dep and dep.kind == "embedded" else "openai",
            "turnout.deployment": a.deployment,
            "turnout.attempt": a.number,
            "gen_ai.usage.input_tokens": a.prompt_tokens,
            "gen_ai.usage.output_tokens": a.completion_tokens,
        }
        if a.finish_reason:
            a_attrs["gen_ai.response.finish_reasons"] = [a.finish_reason]
        if a.error:
            a_attrs["error.type"] = a.error
        if dep and dep.base_url:
            from urllib.parse import urlsplit

            u = urlsplit(dep.base_url)
            a_attrs["server.address"] = u.hostname or ""
            if u.port:
                a_attrs["server.port"] = u.port
        kind = SpanKind.INTERNAL if dep and dep.kind == "embedded" else SpanKind.CLIENT
        child = tracer.start_span(
            f"{op} {upstream_model}",
            context=ctx,
            kind=kind,
            start_time=_ns(a.started),
            attributes=a_attrs,
        )
        if a.error:
            child.set_status(Status(StatusCode.ERROR, a.error))
        child.end(end_time=_ns(a.ended or run.ended))
    if run.outcome is None or run.outcome.value not in _OK_OUTCOMES:
        span.set_status(Status(StatusCode.ERROR, run.error or "unfinished"))
        span.set_attribute("error.type", run.outcome.value if run.outcome else "unfinished")
    span.end(end_time=_ns(run.ended))
