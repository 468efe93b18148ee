"""The Responses API through the official `openai` SDK, unchanged, against a chat upstream."""

from __future__ import annotations

import json
from collections.abc import Callable

import openai
import pytest
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

Factory = Callable[[str], RunningGateway]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def config(upstream: ScriptedUpstream, extra: str = "") -> str:
    return f"""
deployments:
  up: {{kind: openai, base_url: "{upstream.base_url}", model: up-model}}
models:
  assistant:
    deployments: [up]
    lifecycle: {{max_attempts: 3, backoff: {{base_s: 0.01, max_s: 0.02}}}}
{extra}
"""


def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def test_a_string_input_comes_back_as_a_response_object(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream))
    upstream.script(Step(content="Hello there.", prompt_tokens=7, completion_tokens=2))
    r = client(gw).responses.create(
        model="assistant", input="Say hello", instructions="Be brief.", max_output_tokens=20,
        metadata={"team": "a"}, temperature=0.3,
    )  # fmt: skip
    assert r.status == "completed"
    assert r.output_text == "Hello there."
    assert r.id.startswith("resp_") and r.output[0].id.startswith("msg_")
    assert (r.usage.input_tokens, r.usage.output_tokens) == (7, 2)
    assert r.instructions == "Be brief." and r.metadata == {"team": "a"}
    sent = upstream.wait_for_requests(1)[0].body
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]
    assert sent["max_tokens"] == 20 and sent["temperature"] == 0.3
    rec = gw.record(r.id.removeprefix("resp_"))
    assert rec["wire"] == "responses" and rec["outcome"] == "completed"
    assert rec["attrs"]["wire_out"] == "chat.completions"


def test_a_function_call_round_trip_with_function_call_output(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream))
    call = {"id": "call_w1", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    upstream.script(
        Step(content=None, tool_calls=[call], finish_reason="tool_calls"),
        Step(content="It is cold in Oslo."),
    )
    c = client(gw)
    first = c.responses.create(model="assistant", input="Weather in Oslo?", tools=[WEATHER])
    fc = first.output[0]
    assert fc.type == "function_call" and fc.name == "get_weather"
    assert fc.call_id == "call_w1" and json.loads(fc.arguments) == {"city": "Oslo"}
    second = c.responses.create(
        model="assistant",
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"type": "function_call", "call_id": fc.call_id, "name": fc.name,
             "arguments": fc.arguments},
            {"type": "function_call_output", "call_id": fc.call_id, "output": "-3 C"},
        ],
    )  # fmt: skip
    assert second.output_text == "It is cold in Oslo."
    sent = upstream.wait_for_requests(2)[1].body["messages"]
    assert sent[1]["role"] == "assistant" and sent[1]["tool_calls"][0]["id"] == "call_w1"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_w1", "content": "-3 C"}


def test_streaming_events_carry_sequence_numbers_and_consistent_ids(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream))
    upstream.script(Step(content="One two three.", prompt_tokens=5, completion_tokens=3))
    with client(gw).responses.stream(model="assistant", input="Count") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added",
    ]  # fmt: skip
    assert kinds[-4:] == [
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert "".join(d.delta for d in deltas) == "One two three."
    assert {d.item_id for d in deltas} == {final.output[0].id}
    assert final.id == events[0].response.id
    assert final.output_text == "One two three."
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 3)


def test_a_streamed_function_call_arrives_as_argument_deltas(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream))
    args = {"city": "Lisbon", "detail": "a long enough argument string"}
    call = {"id": "call_s1", "function": {"name": "get_weather", "arguments": args}}
    upstream.script(Step(content=None, tool_calls=[call], finish_reason="tool_calls"))
    with client(gw).responses.stream(
        model="assistant", input="Weather?", tools=[WEATHER]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) > 1
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == args
    item = final.output[0]
    assert item.type == "function_call" and item.call_id == "call_s1"
    assert {d.item_id for d in deltas} == {done.item_id} == {item.id}


def test_structured_output_with_a_json_schema_is_reasked_until_valid(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream, ""))
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    upstream.script(Step(content='{"n": "seven"}'), Step(content='{"n": 7}'))
    r = client(gw).responses.create(
        model="assistant",
        input="A number",
        text={"format": {"type": "json_schema", "name": "num", "schema": schema, "strict": True}},
    )
    assert json.loads(r.output_text) == {"n": 7}
    assert r.text.format.type == "json_schema"
    sent = upstream.wait_for_requests(2)
    assert sent[0].body["response_format"]["json_schema"]["name"] == "num"
    rec = gw.record(r.id.removeprefix("resp_"))
    assert "reasking" in [e["state"] for e in rec["events"]]


def test_previous_response_id_continues_the_recorded_conversation(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream))
    upstream.script(Step(content="Nice to meet you, Ada."), Step(content="Your name is Ada."))
    c = client(gw)
    first = c.responses.create(model="assistant", input="I am Ada.", instructions="Be kind.")
    second = c.responses.create(
        model="assistant", input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    sent = upstream.wait_for_requests(2)[1].body["messages"]
    assert sent == [
        {"role": "user", "content": "I am Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"},
    ]  # the first turn's instructions do not carry over


def test_a_stored_response_is_retrieved_then_deleted(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream))
    upstream.script(Step(content="Kept."))
    c = client(gw)
    made = c.responses.create(model="assistant", input="Keep this", metadata={"k": "v"})
    got = c.responses.retrieve(made.id)
    assert got.id == made.id and got.output_text == "Kept."
    assert got.output[0].id == made.output[0].id and got.metadata == {"k": "v"}
    c.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(made.id)
    rec = gw.record(made.id.removeprefix("resp_"))
    assert rec["request_body"] is None and rec["response_body"] is None
    assert rec["outcome"] == "completed" and rec["attrs"]["responses"]["deleted"] is True


def test_store_false_is_not_retrievable(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream))
    c = client(gw)
    made = c.responses.create(model="assistant", input="Forget this", store=False)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(made.id)
    with pytest.raises(openai.BadRequestError) as err:
        c.responses.create(model="assistant", input="and?", previous_response_id=made.id)
    assert err.value.body["param"] == "previous_response_id"


def test_previous_response_id_needs_full_bodies_in_the_record(
    upstream: ScriptedUpstream, gateway_factory: Factory, tmp_path: object
) -> None:
    store = f'store: {{url: "sqlite:///{tmp_path}/r.db", record_bodies: redacted}}'
    gw = gateway_factory(config(upstream, store))
    c = client(gw)
    made = c.responses.create(model="assistant", input="hi")
    with pytest.raises(openai.BadRequestError) as err:
        c.responses.create(model="assistant", input="and?", previous_response_id=made.id)
    assert "record_bodies: full" in err.value.message
    assert err.value.body["param"] == "previous_response_id"
