"""Lifecycle faults and bad input through /v1/responses: what the SDK saw, and the record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

Factory = Callable[[str], RunningGateway]


def config(upstream: ScriptedUpstream, lifecycle: str = "") -> str:
    return f"""
deployments:
  up: {{kind: openai, base_url: "{upstream.base_url}", model: up-model}}
models:
  assistant:
    deployments: [up]
    lifecycle: {{max_attempts: 2, backoff: {{base_s: 0.01, max_s: 0.02}}{lifecycle}}}
"""


def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def record_of(gw: RunningGateway, response_id: str) -> dict[str, Any]:
    return gw.record(response_id.removeprefix("resp_"))


def test_a_rate_limit_is_retried_and_the_client_sees_one_response(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream))
    upstream.script(Step(status=429, headers={"retry-after": "0"}), Step(content="Fine."))
    r = client(gw).responses.create(model="assistant", input="hi")
    assert r.output_text == "Fine."
    rec = record_of(gw, r.id)
    assert [a.get("error") for a in rec["attempt_log"]] == ["rate_limited", None]
    assert "backoff" in [e["state"] for e in rec["events"]]


def test_server_errors_on_every_attempt_reach_the_client_as_an_error(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream))
    upstream.script(Step(status=500), Step(status=500))
    with pytest.raises(openai.APIStatusError) as err:
        client(gw).responses.create(model="assistant", input="hi")
    assert err.value.status_code >= 500
    rid = err.value.response.headers["x-turnout-request-id"]
    rec = gw.record(rid)
    assert rec["outcome"] == "failed_upstream" and rec["wire"] == "responses"
    assert rec["attempts"] == 2


def test_a_stream_that_breaks_ends_with_error_and_response_failed(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream))
    upstream.script(Step(content="one two three four five six", break_after_chunks=2))
    events = list(client(gw).responses.create(model="assistant", input="hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "response.failed"]
    assert "response.output_text.delta" in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None
    assert failed.id == events[0].response.id
    rec = record_of(gw, failed.id)
    assert rec["outcome"] == "failed_upstream"
    assert rec["attempt_log"][0]["error"] == "broken_stream"


def test_a_truncated_answer_accepted_by_policy_is_incomplete(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream, ", on_truncation: accept"))
    upstream.script(Step(content="cut off", finish_reason="length"))
    r = client(gw).responses.create(model="assistant", input="hi", max_output_tokens=2)
    assert r.status == "incomplete"
    assert r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    assert record_of(gw, r.id)["outcome"] == "truncated"


def test_a_truncated_stream_ends_with_response_incomplete(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream, ", on_truncation: accept"))
    upstream.script(Step(content="cut off here", finish_reason="length"))
    events = list(client(gw).responses.create(model="assistant", input="hi", stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert events[-1].response.output[0].content[0].text == "cut off here"


def test_invalid_output_that_stays_invalid_fails_in_openai_shape(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream, ", on_invalid_output: fail"))
    upstream.script(Step(content="not json at all"))
    with pytest.raises(openai.APIStatusError) as err:
        client(gw).responses.create(
            model="assistant", input="json please", text={"format": {"type": "json_object"}}
        )
    assert err.value.status_code == 502
    rec = gw.record(err.value.response.headers["x-turnout-request-id"])
    assert rec["outcome"] == "invalid_output"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi", "frobnicate": 1}, "frobnicate"),
        ({"input": "hi", "background": True}, "background"),
        ({}, "input"),
        ({"input": [{"role": "user", "content": [{"type": "input_file"}]}]},
         "input[0].content[0].type"),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
         "input[0].call_id"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"input": "hi", "tool_choice": {"type": "function", "name": "nope"}},
         "tool_choice.name"),
        ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x",
                                             "schema": {"type": "nope"}}}},
         "text.format.schema"),
        ({"input": "hi", "previous_response_id": "chatcmpl-1"}, "previous_response_id"),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_naming_the_field_and_recorded_rejected(
    upstream: ScriptedUpstream, gateway_factory: Factory, body: dict[str, Any], param: str
) -> None:
    gw = gateway_factory(config(upstream))
    resp = gw.post("/v1/responses", {"model": "assistant", **body})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == param
    assert gw.record(resp.headers["x-turnout-request-id"])["outcome"] == "rejected"
    assert upstream.requests == []


def test_include_and_reasoning_are_accepted_and_noted_in_the_record(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream))
    r = client(gw).responses.create(
        model="assistant",
        input=[
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"role": "user", "content": "hi"},
        ],
        include=["reasoning.encrypted_content"],
        reasoning={"effort": "low"},
    )
    assert r.status == "completed"
    notes = record_of(gw, r.id)["attrs"]["responses"]
    assert notes["accepted_not_applied"] == ["include", "reasoning"]
    assert notes["reasoning_items_ignored"] == 1


def test_unknown_response_ids_are_404_and_other_methods_405(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream))
    assert gw.http.get("/v1/responses/resp_0123abcd").status_code == 404
    assert gw.http.get("/v1/responses/not-an-id").status_code == 404
    assert gw.http.put("/v1/responses/resp_0123abcd").status_code == 405
    assert gw.http.get("/v1/responses").status_code == 405
