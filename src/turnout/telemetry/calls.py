"""The GenAI span of one upstream call: what was sent on that attempt, what came back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.trace import Span, Status, StatusCode

from turnout.backends.base import Usage
from turnout.config import DeploymentConfig
from turnout.lifecycle.run import Attempt, Run
from turnout.telemetry.content import ContentCapture

_PROVIDERS = {"embedded": "llama.cpp", "openai": "openai", "anthropic": "anthropic"}
_NUMBERS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
)
_INTEGERS = (("seed", "gen_ai.request.seed"), ("top_k", "gen_ai.request.top_k"))


def provider_name(dep: DeploymentConfig) -> str:
    return _PROVIDERS.get(dep.kind, dep.kind)


def operation_name(run: Run) -> str:
    return "text_completion" if run.operation == "text_completion" else "chat"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def call_attributes(
    run: Run, attempt: Attempt, dep: DeploymentConfig, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Known at the call's start: who is called, and the parameters this attempt sends."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation_name(run),
        "gen_ai.provider.name": provider_name(dep),
        "gen_ai.request.model": dep.model,
        "turnout.deployment": attempt.deployment,
        "turnout.attempt": attempt.number,
    }
    if dep.base_url:
        u = urlsplit(dep.base_url)
        if u.hostname:
            attrs["server.address"] = u.hostname
            attrs["server.port"] = u.port or (443 if u.scheme == "https" else 80)
    if run.stream:
        attrs["gen_ai.request.stream"] = True
    if attempt.continuation:
        attrs["turnout.continuation"] = True
    limit = _int(body.get("max_completion_tokens"))
    limit = _int(body.get("max_tokens")) if limit is None else limit
    if limit is not None:
        attrs["gen_ai.request.max_tokens"] = limit
    for key, name in _NUMBERS:
        if (x := _number(body.get(key))) is not None:
            attrs[name] = x
    for key, name in _INTEGERS:
        if (n := _int(body.get(key))) is not None:
            attrs[name] = n
    if (n := _int(body.get("n"))) is not None and n != 1:
        attrs["gen_ai.request.choice.count"] = n
    stop = body.get("stop")
    if isinstance(stop, str):
        attrs["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop and all(isinstance(s, str) for s in stop):
        attrs["gen_ai.request.stop_sequences"] = list(stop)
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("json_object", "json_schema"):
        attrs["gen_ai.output.type"] = "json"
    elif kind == "text":
        attrs["gen_ai.output.type"] = "text"
    return attrs


class CallSpan:
    """An open call span; `headers` carry its context upstream. Ending it twice is harmless."""

    __slots__ = ("_answered", "_content", "ended", "headers", "number", "span")

    def __init__(
        self,
        span: Span,
        number: int,
        headers: dict[str, str],
        content: ContentCapture | None,
    ) -> None:
        self.span = span
        self.number = number  # the attempt's number in its run
        self.headers = headers
        self._content = content
        self._answered = False
        self.ended = False

    def response(self, data: Mapping[str, Any]) -> None:
        """The upstream's answer id and model, from its body or its stream's first chunk."""
        if self._answered:
            return
        self._answered = True
        rid, model = data.get("id"), data.get("model")
        if isinstance(rid, str) and rid:
            self.span.set_attribute("gen_ai.response.id", rid[:256])
        if isinstance(model, str) and model:
            self.span.set_attribute("gen_ai.response.model", model[:256])

    def output(self, message: Any, finish: str | None) -> None:
        """The answer (a message, or a completion's text): recorded only when capture is on."""
        if self._content is not None:
            self.span.set_attributes(self._content.outputs(message, finish))

    @property
    def capturing(self) -> bool:
        return self._content is not None

    def end(self, attempt: Attempt, usage: Usage | None, *, ended_at: float | None = None) -> None:
        """`usage` is this call's own, None when nothing reported or counted it."""
        if self.ended:
            return
        self.ended = True
        span = self.span
        if attempt.ok:
            span.set_attribute("gen_ai.response.finish_reasons", [attempt.finish_reason or "error"])
        else:
            span.set_attribute("gen_ai.response.finish_reasons", ["error"])
            error = attempt.error or "cancelled"
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, error))
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if attempt.ttft_s is not None:  # to the first chunk with a token (not the role alone)
            span.set_attribute("gen_ai.response.time_to_first_chunk", round(attempt.ttft_s, 6))
        end = attempt.ended if attempt.ended is not None else ended_at
        span.end(end_time=None if end is None else int(end * 1e9))
