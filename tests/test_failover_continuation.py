"""Mid-stream faults after bytes reached the client, read through the official openai SDK.

The client must get one seamless answer: the exact full text once, one finish_reason, one
[DONE], and with include_usage one usage chunk at the end.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from failover_helpers import (
    CONTINUED,
    TEXT,
    VLLM_PREFILL,
    Streamed,
    attempts,
    config,
    event,
    path,
    prefix,
    record,
    stream_chat,
)
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

Factory = Callable[[str], RunningGateway]
USAGE = pytest.mark.parametrize("include_usage", [False, True], ids=["no-usage", "usage"])


def assert_seamless(got: Streamed, include_usage: bool) -> None:
    assert got.error is None, f"the SDK raised: {got.error!r}; events: {got.error_events}"
    assert got.text == TEXT
    assert got.finish_reasons == ["stop"]
    assert got.done_count == 1 and got.events[-1] == "[DONE]"
    assert got.error_events == []
    if include_usage:
        assert got.usage_chunks == [len(got.chunks) - 1], "one usage chunk, the last one"
    else:
        assert got.usage_chunks == []


@USAGE
def test_an_unbroken_stream_reads_as_one_answer(
    upstream: ScriptedUpstream, gateway_factory: Factory, include_usage: bool
) -> None:
    """The control: what every continued stream must look like to the client."""
    gw = gateway_factory(config({"a": (upstream, "")}))
    upstream.script(Step(content=TEXT))
    got = stream_chat(gw, include_usage=include_usage)

    assert_seamless(got, include_usage)
    assert path(record(gw, got.request_id))[-3:] == ["streaming", "validating", "completed"]


@USAGE
def test_stream_cut_after_20_words_is_continued_on_the_next_prefill_deployment(
    gateway_factory: Factory, include_usage: bool
) -> None:
    with ScriptedUpstream(Step(content=TEXT)) as a, ScriptedUpstream(Step(content=TEXT)) as b:
        gw = gateway_factory(config({"a": (a, ""), "b": (b, VLLM_PREFILL)}))
        a.script(Step(content=TEXT, break_after_chunks=20))
        question = [{"role": "user", "content": "Tell me about the gateway."}]
        got = stream_chat(gw, include_usage=include_usage, messages=question)

        assert_seamless(got, include_usage)
        (cont,) = b.requests
        assert cont.body["messages"] == [*question, {"role": "assistant", "content": prefix(20)}]
        assert cont.body["stream"] is True
        assert cont.body["continue_final_message"] is True
        assert cont.body["add_generation_prompt"] is False
        assert len(a.requests) == 1
        rec = record(gw, got.request_id)
        assert rec["outcome"] == "completed"
        assert path(rec) == CONTINUED
        assert attempts(rec) == [("a", "broken_stream"), ("b", "ok")]
        assert rec["attempt_log"][1]["continuation"] is True
        assert not rec["attempt_log"][0].get("continuation")
        cont_attrs = event(rec, "continuing")
        assert cont_attrs["deployment"] == "a" and cont_attrs["to"] == "b"
        assert cont_attrs["failure"] == "broken_stream"
        assert cont_attrs["prefix_chars"] == len(prefix(20))
        assert isinstance(cont_attrs["prefix_tokens"], int) and cont_attrs["prefix_tokens"] > 0
        assert rec["response_body"]["content"] == TEXT


@USAGE
def test_stalled_stream_is_continued_after_idle_timeout(
    gateway_factory: Factory, include_usage: bool
) -> None:
    with ScriptedUpstream(Step(content=TEXT)) as a, ScriptedUpstream(Step(content=TEXT)) as b:
        gw = gateway_factory(
            config({"a": (a, "timeouts: {idle_s: 0.3}"), "b": (b, "supports_prefill: true")})
        )
        a.script(Step(content=TEXT, stall_after_chunks=20))
        got = stream_chat(gw, include_usage=include_usage)

        assert_seamless(got, include_usage)
        (cont,) = b.requests
        assert cont.prefill == prefix(20)
        rec = record(gw, got.request_id)
        assert path(rec) == CONTINUED
        assert attempts(rec) == [("a", "timeout"), ("b", "ok")]
        cont_attrs = event(rec, "continuing")
        assert (cont_attrs["deployment"], cont_attrs["to"]) == ("a", "b")
        assert cont_attrs["failure"] == "timeout"
        assert cont_attrs["prefix_chars"] == len(prefix(20))


@USAGE
def test_one_malformed_event_mid_stream_is_skipped(
    upstream: ScriptedUpstream, gateway_factory: Factory, include_usage: bool
) -> None:
    gw = gateway_factory(config({"a": (upstream, "")}))
    upstream.script(Step(content=TEXT, malformed_after_chunks=10))
    before = skipped_metric(gw, "a")
    got = stream_chat(gw, include_usage=include_usage)

    assert_seamless(got, include_usage)
    assert len(upstream.requests) == 1  # skipped, not retried or continued
    rec = record(gw, got.request_id)
    assert rec["outcome"] == "completed"
    assert path(rec) == ["received", "routed", "attempting", "streaming", "validating", "completed"]
    assert attempts(rec) == [("a", "ok")]
    assert rec["attempt_log"][0]["events_skipped"] == 1
    assert skipped_metric(gw, "a") == before + 1


def test_broken_stream_is_continued_on_the_same_deployment(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    upstream.default = Step(content=TEXT)
    gw = gateway_factory(config({"a": (upstream, "supports_prefill: true")}))
    upstream.script(Step(content=TEXT, break_after_chunks=20))
    got = stream_chat(gw)

    assert_seamless(got, include_usage=False)
    first, cont = upstream.requests
    assert first.prefill is None and cont.prefill == prefix(20)
    rec = record(gw, got.request_id)
    assert path(rec) == CONTINUED
    assert attempts(rec) == [("a", "broken_stream"), ("a", "ok")]
    cont_attrs = event(rec, "continuing")
    assert (cont_attrs["deployment"], cont_attrs["to"]) == ("a", "a")


def test_continuation_asks_for_what_is_left_of_the_clients_max_tokens(
    gateway_factory: Factory,
) -> None:
    with ScriptedUpstream(Step(content=TEXT)) as a, ScriptedUpstream(Step(content=TEXT)) as b:
        gw = gateway_factory(config({"a": (a, ""), "b": (b, "supports_prefill: true")}))
        a.script(Step(content=TEXT, break_after_chunks=20))
        got = stream_chat(gw, max_tokens=200)

        assert_seamless(got, include_usage=False)
        (cont,) = b.requests
        assert cont.max_tokens is not None
        assert 0 < cont.max_tokens <= 200 - 20
        tokens = event(record(gw, got.request_id), "continuing")["prefix_tokens"]
        assert cont.max_tokens <= 200 - tokens


def test_without_a_prefill_deployment_the_stream_ends_with_an_error_event(
    gateway_factory: Factory,
) -> None:
    with ScriptedUpstream(Step(content=TEXT)) as a, ScriptedUpstream(Step(content=TEXT)) as b:
        gw = gateway_factory(config({"a": (a, ""), "b": (b, "supports_prefill: false")}))
        a.script(Step(content=TEXT, break_after_chunks=20))
        got = stream_chat(gw)

        assert got.error is not None  # the SDK raises on the error event
        assert got.text == prefix(20)
        assert got.done_count == 0
        assert [e["error"]["code"] for e in got.error_events] == ["broken_stream"]
        assert b.requests == []
        rec = record(gw, got.request_id)
        assert rec["outcome"] == "failed_upstream"
        assert path(rec)[-2:] == ["streaming", "failed_upstream"]
        assert attempts(rec) == [("a", "broken_stream")]


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            },
        },
    }
]


def test_broken_tool_call_stream_is_not_continued(gateway_factory: Factory) -> None:
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}}
    calls = Step(content=None, tool_calls=[call], finish_reason="tool_calls")
    with ScriptedUpstream(calls) as a, ScriptedUpstream(calls) as b:
        gw = gateway_factory(
            config({"a": (a, "supports_prefill: true"), "b": (b, "supports_prefill: true")})
        )
        a.script(Step(content=None, tool_calls=[call], break_after_chunks=2))
        got = stream_chat(gw, tools=TOOLS)

        assert got.error is not None
        assert got.done_count == 0 and len(got.error_events) == 1
        assert len(a.requests) == 1 and b.requests == []
        rec = record(gw, got.request_id)
        assert rec["outcome"] == "failed_upstream"
        assert "continuing" not in path(rec)
        assert attempts(rec) == [("a", "broken_stream")]


def test_text_answer_to_a_request_with_tools_is_continued(gateway_factory: Factory) -> None:
    with ScriptedUpstream(Step(content=TEXT)) as a, ScriptedUpstream(Step(content=TEXT)) as b:
        gw = gateway_factory(config({"a": (a, ""), "b": (b, "supports_prefill: true")}))
        a.script(Step(content=TEXT, break_after_chunks=20))
        got = stream_chat(gw, tools=TOOLS)

        assert_seamless(got, include_usage=False)
        assert b.requests[0].prefill == prefix(20)
        assert path(record(gw, got.request_id)) == CONTINUED


def skipped_metric(gw: RunningGateway, deployment: str) -> float:
    """turnout_stream_events_skipped_total for one deployment, 0 while absent."""
    total = 0.0
    for line in gw.http.get("/metrics").text.splitlines():
        name, _, rest = line.partition("{")
        if name == "turnout_stream_events_skipped_total" and f'deployment="{deployment}"' in rest:
            total += float(line.rsplit(" ", 1)[1])
    return total
