"""Traces as an OTLP receiver gets them, and the GenAI metrics as Prometheus scrapes them.

A real OTLP/HTTP receiver decodes what the gateway exports; each request's story is read from
the wire: one GenAI span per upstream call, the request span as turnout's own, the trace carried
upstream, usage counted once per trace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from failover_helpers import TEXT, VLLM_PREFILL, record, stream_chat
from gateway_harness import RunningGateway
from otlp_receiver import OTLPReceiver, Received
from prometheus_client.parser import text_string_to_metric_families
from upstream import ScriptedUpstream, Step

from turnout.telemetry.tracing import SCHEMA_URL

Factory = Callable[[str], RunningGateway]
INCOMING_TRACE = "0af7651916cd43dd8448eb211c80319c"
INCOMING_PARENT = "b7ad6b7169203331"


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    r = OTLPReceiver().start()
    yield r
    r.stop()


def config(
    receiver: OTLPReceiver,
    deps: dict[str, tuple[ScriptedUpstream, str]],
    lifecycle: str = "backoff: {base_s: 0.01, max_s: 1}",
    telemetry: str = "",
    store: str = "",
) -> str:
    lines = [f'telemetry: {{otlp_endpoint: "{receiver.endpoint}"{telemetry}}}', "deployments:"]
    for name, (up, extra) in deps.items():
        more = f", {extra}" if extra else ""
        lines.append(
            f'  {name}: {{kind: openai, base_url: "{up.base_url}", model: m-{name}{more}}}'
        )
    lines.append(f"models:\n  assistant: {{deployments: [{', '.join(deps)}],")
    lines.append(f"    lifecycle: {{{lifecycle}}}}}")
    if store:
        lines.append(store)
    return "\n".join(lines) + "\n"


def spans(gw: RunningGateway, receiver: OTLPReceiver, rid: str) -> tuple[Received, list[Received]]:
    """The request span and its call spans, once exported (a stream's end comes after [DONE])."""
    deadline = time.monotonic() + 10
    while True:
        assert gw.gateway.tracer is not None and gw.gateway.tracer.force_flush()
        try:
            root = receiver.request_span(rid)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    calls = [s for s in receiver.trace(root.trace_id) if s.parent_span_id == root.span_id]
    return root, calls


def traceparent(received: Any) -> tuple[str, str]:
    version, trace_id, span_id, flags = received.headers["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    return trace_id, span_id


def usage_sum(calls: list[Received]) -> tuple[int, int]:
    return (
        sum(s.attributes.get("gen_ai.usage.input_tokens", 0) for s in calls),
        sum(s.attributes.get("gen_ai.usage.output_tokens", 0) for s in calls),
    )


def assert_joined(call: Received, received: Any) -> None:
    """The upstream got this call span's context: its trace can be joined to the client's."""
    assert traceparent(received) == (call.trace_id, call.span_id)


def test_plain_request_one_call_span_with_what_was_sent_and_what_came_back(
    receiver: OTLPReceiver, upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(receiver, {"a": (upstream, "")}))
    upstream.script(Step(model="m-a-2024-06", prompt_tokens=8, completion_tokens=5))
    r = gw.chat(model="assistant", temperature=0.3, max_tokens=50, seed=7, stop="END", top_p=0.9)
    assert r.status_code == 200
    root, (call,) = spans(gw, receiver, r.headers["x-turnout-request-id"])

    assert call.schema_url == root.schema_url == SCHEMA_URL
    assert call.kind == "client" and call.name == "chat m-a"
    a = call.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "m-a"
    assert a["gen_ai.response.model"] == "m-a-2024-06"
    assert a["gen_ai.response.id"] == r.json()["id"]
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (8, 5)
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.temperature"] == 0.3
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.seed"] == 7
    assert a["gen_ai.request.stop_sequences"] == ["END"]
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == urlsplit(upstream.base_url).port
    assert "gen_ai.request.stream" not in a and "error.type" not in a
    assert "gen_ai.input.messages" not in a  # content capture is off by default

    assert root.kind == "server" and root.name == "POST /v1/chat/completions"
    assert root.attributes["http.route"] == "/v1/chat/completions"
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["turnout.outcome"] == "completed"
    assert not [k for k in root.attributes if k.startswith("gen_ai.")]
    assert root.attributes["turnout.usage.input_tokens"] == 8
    assert root.attributes["turnout.usage.output_tokens"] == 5
    assert call.start_ns >= root.start_ns and call.end_ns <= root.end_ns
    assert_joined(call, upstream.requests[0])


def test_incoming_trace_context_continues_through_turnout_to_the_upstream(
    receiver: OTLPReceiver, upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(receiver, {"a": (upstream, "")}))
    headers = {
        "traceparent": f"00-{INCOMING_TRACE}-{INCOMING_PARENT}-01",
        "tracestate": "vendor=abc",
    }
    body = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}
    r = gw.http.post("/v1/chat/completions", json=body, headers=headers)
    root, (call,) = spans(gw, receiver, r.headers["x-turnout-request-id"])

    assert root.trace_id == INCOMING_TRACE and root.parent_span_id == INCOMING_PARENT
    (got,) = upstream.requests
    assert traceparent(got) == (INCOMING_TRACE, call.span_id)
    assert got.headers["tracestate"] == "vendor=abc"


def test_streamed_call_span_has_stream_and_time_to_first_chunk(
    receiver: OTLPReceiver, upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(receiver, {"a": (upstream, "")}))
    upstream.script(Step(content=TEXT, prompt_tokens=9, completion_tokens=40, model="m-a-x"))
    got = stream_chat(gw, include_usage=True)
    root, (call,) = spans(gw, receiver, got.request_id)

    a = call.attributes
    assert a["gen_ai.request.stream"] is True
    assert 0 < a["gen_ai.response.time_to_first_chunk"] < (call.end_ns - call.start_ns) / 1e9
    assert a["gen_ai.response.id"] == got.chunks[0].id
    assert a["gen_ai.response.model"] == "m-a-x"
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert usage_sum([call]) == (9, 40)
    assert_joined(call, upstream.requests[0])
    assert root.attributes["turnout.stream"] is True


def test_failover_one_span_per_call_the_failed_one_with_error_and_no_usage(
    receiver: OTLPReceiver, gateway_factory: Factory
) -> None:
    with ScriptedUpstream() as a, ScriptedUpstream() as b:
        gw = gateway_factory(config(receiver, {"a": (a, ""), "b": (b, "")}))
        a.script(Step(status=500), Step(status=500))
        b.script(Step(prompt_tokens=8, completion_tokens=5))
        r = gw.chat(model="assistant")
        assert r.status_code == 200
        _, calls = spans(gw, receiver, r.headers["x-turnout-request-id"])

        assert [c.attributes["turnout.deployment"] for c in calls] == ["a"] * len(a.requests) + [
            "b"
        ]
        failed, ok = calls[:-1], calls[-1]
        for span, got in zip(failed, a.requests, strict=True):
            assert span.attributes["error.type"] == "server_error"
            assert span.attributes["gen_ai.response.finish_reasons"] == ["error"]
            assert "gen_ai.usage.input_tokens" not in span.attributes
            assert span.status_code == 2  # STATUS_CODE_ERROR
            assert_joined(span, got)
        assert_joined(ok, b.requests[0])
        assert ok.attributes["gen_ai.request.model"] == "m-b"
        assert usage_sum(calls) == (8, 5)  # once, not doubled by the request span
        assert len({c.span_id for c in calls}) == len(calls)


def test_truncation_retries_report_the_max_tokens_each_attempt_sent(
    receiver: OTLPReceiver, upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    lifecycle = "on_truncation: retry, backoff: {base_s: 0.01, max_s: 1}"
    gw = gateway_factory(config(receiver, {"a": (upstream, "")}, lifecycle))
    upstream.script(
        Step(content="cut off", finish_reason="length", prompt_tokens=31, completion_tokens=20),
        Step(content="whole answer", prompt_tokens=31, completion_tokens=32),
    )
    r = gw.chat(model="assistant")  # no limit of the client's: turnout sets and grows its own
    assert r.status_code == 200
    rid = r.headers["x-turnout-request-id"]
    _, calls = spans(gw, receiver, rid)

    assert len(calls) == 2 == len(upstream.requests)
    for span, got in zip(calls, upstream.requests, strict=True):
        assert span.attributes.get("gen_ai.request.max_tokens") == got.body.get("max_tokens")
        assert_joined(span, got)
    assert calls[1].attributes["gen_ai.request.max_tokens"] == 40
    assert [c.attributes["gen_ai.response.finish_reasons"] for c in calls] == [
        ["length"],
        ["stop"],
    ]
    rec = record(gw, rid)
    assert usage_sum(calls) == (62, 52) == (rec["prompt_tokens"], rec["completion_tokens"])


def test_continued_stream_is_a_call_span_like_any_other(
    receiver: OTLPReceiver, gateway_factory: Factory
) -> None:
    with ScriptedUpstream(Step(content=TEXT)) as a, ScriptedUpstream(Step(content=TEXT)) as b:
        gw = gateway_factory(config(receiver, {"a": (a, ""), "b": (b, VLLM_PREFILL)}))
        a.script(Step(content=TEXT, break_after_chunks=20))
        got = stream_chat(gw, include_usage=True)
        assert got.error is None and got.text == TEXT
        root, (broken, cont) = spans(gw, receiver, got.request_id)

        assert broken.attributes["error.type"] == "broken_stream"
        assert broken.attributes["gen_ai.response.finish_reasons"] == ["error"]
        assert cont.attributes["turnout.continuation"] is True
        assert "turnout.continuation" not in broken.attributes
        assert cont.attributes["gen_ai.response.finish_reasons"] == ["stop"]
        assert_joined(broken, a.requests[0])
        assert_joined(cont, b.requests[0])
        rec = record(gw, got.request_id)
        assert usage_sum([broken, cont]) == (rec["prompt_tokens"], rec["completion_tokens"])
        names = [n for n, _ in root.events]
        assert "turnout.continuing" in names


def test_cancelled_stream_ends_its_call_span_as_cancelled(
    receiver: OTLPReceiver, upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(receiver, {"a": (upstream, "")}))
    upstream.script(Step(content="a b c d e f g h i j", chunk_delay_s=0.3))
    body = {"model": "assistant", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=5) as r:
        rid = r.headers["x-turnout-request-id"]
        for line in r.iter_lines():
            if '"content":"a"' in line.replace(" ", ""):
                break
    root, (call,) = spans(gw, receiver, rid)

    assert root.attributes["turnout.outcome"] == "cancelled"
    assert root.attributes["error.type"] == "cancelled"
    assert call.attributes["error.type"] == "cancelled"
    assert call.attributes["gen_ai.response.finish_reasons"] == ["error"]
    assert call.end_ns <= root.end_ns
    assert_joined(call, upstream.requests[0])


def test_lifecycle_events_carry_lists_and_maps_as_json(
    receiver: OTLPReceiver, upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(receiver, {"a": (upstream, "")}))
    r = gw.chat(model="assistant")
    root, _ = spans(gw, receiver, r.headers["x-turnout-request-id"])

    events = dict(root.events)
    assert [n for n, _ in root.events] == [
        "turnout.received",
        "turnout.routed",
        "turnout.attempting",
        "turnout.validating",
        "turnout.completed",
    ]
    candidates = json.loads(events["turnout.routed"]["turnout.candidates"])
    assert isinstance(candidates, list) and isinstance(candidates[0], dict)
    assert events["turnout.attempting"]["turnout.attempt"] == 1


MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Write to ada@example.com please."},
]


def test_content_capture_is_opt_in_and_follows_the_conventions_format(
    receiver: OTLPReceiver, upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(
        config(receiver, {"a": (upstream, "")}, telemetry=", capture_content: true")
    )
    upstream.script(Step(content="Done."))
    r = gw.chat(model="assistant", messages=MESSAGES)
    _, (call,) = spans(gw, receiver, r.headers["x-turnout-request-id"])

    a = call.attributes
    assert json.loads(a["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": MESSAGES[1]["content"]}]}
    ]
    assert json.loads(a["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Done."}],
            "finish_reason": "stop",
        }
    ]


def test_content_capture_with_redacted_records_keeps_structure_only(
    receiver: OTLPReceiver, upstream: ScriptedUpstream, gateway_factory: Factory, tmp_path: Any
) -> None:
    store = f'store: {{url: "sqlite:///{tmp_path}/r.db", record_bodies: redacted}}'
    gw = gateway_factory(
        config(receiver, {"a": (upstream, "")}, telemetry=", capture_content: true", store=store)
    )
    r = gw.chat(model="assistant", messages=MESSAGES)
    _, (call,) = spans(gw, receiver, r.headers["x-turnout-request-id"])

    (msg,) = json.loads(call.attributes["gen_ai.input.messages"])
    assert msg["parts"] == [
        {"type": "text", "content": f"[redacted: {len(MESSAGES[1]['content'])} chars]"}
    ]
    assert "ada@example.com" not in json.dumps(call.attributes)


def test_content_capture_with_the_privacy_scanner_replaces_what_it_finds(
    receiver: OTLPReceiver, upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    text = config(receiver, {"a": (upstream, "")}, telemetry=", capture_content: true")
    text = text.replace("lifecycle:", "privacy: redact, lifecycle:")
    gw = gateway_factory(text)
    r = gw.chat(model="assistant", messages=MESSAGES)
    _, (call,) = spans(gw, receiver, r.headers["x-turnout-request-id"])

    (msg,) = json.loads(call.attributes["gen_ai.input.messages"])
    assert msg["parts"][0]["content"] == "Write to [EMAIL_1] please."


def test_content_capture_with_no_records_captures_nothing(
    receiver: OTLPReceiver, upstream: ScriptedUpstream, gateway_factory: Factory, tmp_path: Any
) -> None:
    store = f'store: {{url: "sqlite:///{tmp_path}/r.db", record_bodies: none}}'
    gw = gateway_factory(
        config(receiver, {"a": (upstream, "")}, telemetry=", capture_content: true", store=store)
    )
    r = gw.chat(model="assistant", messages=MESSAGES)
    _, (call,) = spans(gw, receiver, r.headers["x-turnout-request-id"])
    assert not [k for k in call.attributes if k.startswith(("gen_ai.input", "gen_ai.output"))]


def _samples(text: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        out[f"{family.name}:{family.type}"] = family.samples
    return out


def test_genai_client_metrics_beside_turnouts_own(
    receiver: OTLPReceiver, upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(receiver, {"a": (upstream, "")}))
    upstream.script(Step(status=400))  # the request's own fault: one failed call, no retry
    assert gw.chat(model="assistant").status_code == 400
    upstream.script(Step(prompt_tokens=8, completion_tokens=5))
    assert gw.chat(model="assistant").status_code == 200
    upstream.script(Step(content=TEXT, prompt_tokens=3, completion_tokens=40))
    got = stream_chat(gw)
    spans(gw, receiver, got.request_id)  # the stream's run has ended (and been counted)
    families = _samples(gw.http.get("/metrics").text)

    usage = families["gen_ai_client_token_usage:histogram"]
    labels = {k for s in usage for k in s.labels}
    assert labels == {
        "gen_ai_operation_name",
        "gen_ai_provider_name",
        "gen_ai_request_model",
        "gen_ai_token_type",
        "le",
    }
    assert {
        (s.labels["gen_ai_operation_name"], s.labels["gen_ai_provider_name"]) for s in usage
    } == {("chat", "openai")}
    by_type = {
        (s.name.rsplit("_", 1)[1], s.labels["gen_ai_token_type"]): s.value
        for s in usage
        if s.name.endswith(("_sum", "_count"))
    }
    # The failed call reported no usage, so it is not counted as zero tokens.
    assert by_type == {
        ("sum", "input"): 11.0,
        ("count", "input"): 2.0,
        ("sum", "output"): 45.0,
        ("count", "output"): 2.0,
    }
    duration = families["gen_ai_client_operation_duration_seconds:histogram"]
    counts = {s.labels["error_type"]: s.value for s in duration if s.name.endswith("_count")}
    assert counts == {"client_error": 1.0, "": 2.0}
    ttfc = families["gen_ai_client_operation_time_to_first_chunk_seconds:histogram"]
    assert [s.value for s in ttfc if s.name.endswith("_count")] == [1.0]
    dropped = families["turnout_records_dropped:counter"]
    assert [(s.name, s.value) for s in dropped if s.name.endswith("_total")] == [
        ("turnout_records_dropped_total", 0.0)
    ]
