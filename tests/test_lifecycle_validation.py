"""The failures that arrive as HTTP 200: truncation, invalid output, bad tool calls, budgets."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from gateway_harness import RunningGateway
from lifecycle_helpers import check_run, sse_events
from upstream import ScriptedUpstream, Step

Factory = Callable[[str], RunningGateway]
OK_PATH = ["received", "routed", "attempting", "validating", "completed"]
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}
JSON_SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "integer"}},
                "required": ["order_id"],
            },
        },
    }
]


def config(url: str, lifecycle: str = "") -> str:
    return f"""
deployments:
  a: {{kind: openai, base_url: "{url}", model: m,
      price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
models:
  assistant: {{deployments: [a], lifecycle: {{backoff: {{base_s: 0.01}}, {lifecycle}}}}}
"""


def test_truncation_accepted_is_flagged(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url, "on_truncation: accept"))
    upstream.script(Step(content="cut off", finish_reason="length"))
    r = gw.chat(model="assistant", max_tokens=2)
    check_run(
        gw,
        r,
        outcome="truncated",
        path=["received", "routed", "attempting", "validating", "truncated"],
        attempts=[("a", "ok")],
    )
    assert r.json()["choices"][0]["finish_reason"] == "length"


def test_truncation_retried_with_more_room(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url, "on_truncation: retry"))
    upstream.script(Step(content="cut off", finish_reason="length", completion_tokens=20))
    r = gw.chat(model="assistant")  # no limit of the client's: turnout may set and grow its own
    rec = check_run(
        gw,
        r,
        outcome="completed",
        path=[
            "received",
            "routed",
            "attempting",
            "validating",
            "attempting",
            "validating",
            "completed",
        ],
        attempts=[("a", "ok"), ("a", "ok")],
    )
    assert rec["events"][4]["attrs"] == {
        "attempt": 2,
        "deployment": "a",
        "reason": "truncated",
        "max_tokens": 40,
    }
    assert upstream.requests[1].body["max_tokens"] == 40
    assert rec["completion_tokens"] == 20 + 3  # both attempts are paid for and visible


def test_truncation_fail_policy(upstream: ScriptedUpstream, gateway_factory: Factory) -> None:
    gw = gateway_factory(config(upstream.base_url, "on_truncation: fail"))
    upstream.script(Step(finish_reason="length"))
    r = gw.chat(model="assistant", max_tokens=3)
    check_run(
        gw,
        r,
        outcome="invalid_output",
        status=502,
        path=["received", "routed", "attempting", "validating", "invalid_output"],
        attempts=[("a", "ok")],
    )
    assert r.json()["error"]["code"] == "truncated"


def test_truncated_structured_output_is_never_a_success(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url, "on_truncation: accept"))
    upstream.script(Step(content='{"city": "Par', finish_reason="length"))
    r = gw.chat(model="assistant", max_tokens=5, response_format={"type": "json_object"})
    check_run(
        gw,
        r,
        outcome="invalid_output",
        status=502,
        path=["received", "routed", "attempting", "validating", "invalid_output"],
        attempts=[("a", "ok")],
    )


def test_truncated_structured_stream_ends_with_an_error_event(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url, "on_truncation: accept"))
    upstream.script(Step(content='{"city": "Par', finish_reason="length"))
    r = gw.chat(model="assistant", stream=True, response_format={"type": "json_object"})
    check_run(
        gw,
        r,
        outcome="invalid_output",
        path=["received", "routed", "attempting", "streaming", "validating", "invalid_output"],
        attempts=[("a", "ok")],
    )
    assert sse_events(r.text)[-1]["error"]["code"] == "truncated"


def test_invalid_json_is_reasked_with_the_error(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url))
    upstream.script(
        Step(content="Sure! Here it is: {city: Paris"), Step(content='{"city": "Paris"}')
    )
    r = gw.chat(model="assistant", response_format={"type": "json_object"})
    rec = check_run(
        gw,
        r,
        outcome="completed",
        path=[
            "received",
            "routed",
            "attempting",
            "validating",
            "reasking",
            "attempting",
            "validating",
            "completed",
        ],
        attempts=[("a", "invalid_json"), ("a", "ok")],
    )
    assert rec["events"][4]["attrs"]["kind"] == "invalid_json"
    reask = upstream.requests[1].body["messages"]
    assert reask[-2] == {"role": "assistant", "content": "Sure! Here it is: {city: Paris"}
    assert reask[-1]["role"] == "user" and "not valid JSON" in reask[-1]["content"]
    assert len(upstream.requests[0].body["messages"]) == 1  # the client's body was not mutated


def test_schema_violation_exhausting_reasks_ends_invalid_output(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url, "max_reasks: 1"))
    bad = Step(content='{"city": "Paris", "population": "many"}')
    upstream.script(bad, bad)
    r = gw.chat(model="assistant", response_format=JSON_SCHEMA_FORMAT)
    rec = check_run(
        gw,
        r,
        outcome="invalid_output",
        status=502,
        path=[
            "received",
            "routed",
            "attempting",
            "validating",
            "reasking",
            "attempting",
            "validating",
            "invalid_output",
        ],
        attempts=[("a", "schema_violation"), ("a", "schema_violation")],
    )
    err = r.json()["error"]
    assert err["type"] == "invalid_output" and err["code"] == "schema_violation"
    assert "population" in err["message"]
    assert rec["cost_usd"] > 0 and rec["completion_tokens"] > 0  # the re-ask's cost is visible


def test_valid_schema_output_completes_first_time(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url))
    upstream.script(Step(content='{"city": "Paris", "population": 2100000}'))
    r = gw.chat(model="assistant", response_format=JSON_SCHEMA_FORMAT)
    check_run(gw, r, outcome="completed", path=OK_PATH, attempts=[("a", "ok")])


def test_invalid_output_fail_policy_does_not_reask(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url, "on_invalid_output: fail"))
    upstream.script(Step(content="not json"))
    r = gw.chat(model="assistant", response_format={"type": "json_object"})
    check_run(
        gw,
        r,
        outcome="invalid_output",
        status=502,
        path=["received", "routed", "attempting", "validating", "invalid_output"],
        attempts=[("a", "invalid_json")],
    )


def test_empty_answer_is_invalid(upstream: ScriptedUpstream, gateway_factory: Factory) -> None:
    gw = gateway_factory(config(upstream.base_url))
    upstream.script(Step(content=""), Step(content="Now with words."))
    r = gw.chat(model="assistant")
    check_run(
        gw,
        r,
        outcome="completed",
        path=[
            "received",
            "routed",
            "attempting",
            "validating",
            "reasking",
            "attempting",
            "validating",
            "completed",
        ],
        attempts=[("a", "empty"), ("a", "ok")],
    )


@pytest.mark.parametrize(
    "arguments",
    ['{"order_id": "abc"}', '{"order_id": 12', "{}"],
    ids=["wrong-type", "not-json", "missing-required"],
)
def test_bad_tool_arguments_are_reasked_through_tool_messages(
    upstream: ScriptedUpstream, gateway_factory: Factory, arguments: str
) -> None:
    gw = gateway_factory(config(upstream.base_url))
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": arguments},
    }
    good = {
        "id": "call_2",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"order_id": 12}'},
    }
    upstream.script(
        Step(content=None, tool_calls=[call], finish_reason="tool_calls"),
        Step(content=None, tool_calls=[good], finish_reason="tool_calls"),
    )
    r = gw.chat(model="assistant", tools=TOOLS)
    check_run(
        gw,
        r,
        outcome="completed",
        path=[
            "received",
            "routed",
            "attempting",
            "validating",
            "reasking",
            "attempting",
            "validating",
            "completed",
        ],
        attempts=[("a", "bad_tool_call"), ("a", "ok")],
    )
    assert r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == (
        '{"order_id": 12}'
    )
    followup = upstream.requests[1].body["messages"]
    assert followup[-2]["tool_calls"][0]["id"] == "call_1"
    assert followup[-1]["role"] == "tool" and followup[-1]["tool_call_id"] == "call_1"


def test_unknown_tool_is_invalid(upstream: ScriptedUpstream, gateway_factory: Factory) -> None:
    gw = gateway_factory(config(upstream.base_url, "on_invalid_output: fail"))
    call = {"id": "c", "type": "function", "function": {"name": "rm_rf", "arguments": "{}"}}
    upstream.script(Step(content=None, tool_calls=[call], finish_reason="tool_calls"))
    r = gw.chat(model="assistant", tools=TOOLS)
    assert r.status_code == 502
    assert "rm_rf" in r.json()["error"]["message"]


def test_streamed_tool_calls_are_passed_through_and_validated(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url))
    call = {
        "id": "call_9",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"order_id": 4242}'},
    }
    upstream.script(Step(content=None, tool_calls=[call], finish_reason="tool_calls"))
    r = gw.chat(model="assistant", tools=TOOLS, stream=True)
    rec = check_run(
        gw,
        r,
        outcome="completed",
        path=["received", "routed", "attempting", "streaming", "validating", "completed"],
        attempts=[("a", "ok")],
    )
    args = "".join(
        tc["function"].get("arguments", "")
        for e in sse_events(r.text)[:-1]
        for c in e["choices"]
        for tc in c["delta"].get("tool_calls") or []
    )
    assert json.loads(args) == {"order_id": 4242}
    assert rec["response_body"]["tool_calls"][0]["function"]["name"] == "lookup"


def test_token_budget_stops_reasking(upstream: ScriptedUpstream, gateway_factory: Factory) -> None:
    gw = gateway_factory(config(upstream.base_url, "budget: {max_total_tokens: 50}"))
    upstream.script(Step(content="not json", prompt_tokens=30, completion_tokens=25))
    r = gw.chat(model="assistant", response_format={"type": "json_object"})
    rec = check_run(
        gw,
        r,
        outcome="budget_exceeded",
        status=402,
        path=["received", "routed", "attempting", "validating", "budget_exceeded"],
        attempts=[("a", "invalid_json")],
    )
    assert rec["prompt_tokens"] + rec["completion_tokens"] == 55
    assert len(upstream.requests) == 1


def test_cost_budget_stops_retries(upstream: ScriptedUpstream, gateway_factory: Factory) -> None:
    gw = gateway_factory(
        config(upstream.base_url, "on_truncation: retry, budget: {max_cost_usd: 0.00001}")
    )
    upstream.script(Step(finish_reason="length", prompt_tokens=10, completion_tokens=10))
    r = gw.chat(model="assistant")
    rec = check_run(
        gw,
        r,
        outcome="budget_exceeded",
        status=402,
        path=["received", "routed", "attempting", "validating", "budget_exceeded"],
        attempts=[("a", "ok")],
    )
    assert rec["cost_usd"] == pytest.approx(10 * 1e-6 + 10 * 2e-6)
