"""`/v1/messages`: the official Anthropic SDK, unchanged, through turnout to an OpenAI-compatible
upstream; what the client sees in its own format, and what the record keeps."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import anthropic
import httpx
import orjson
import pytest
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture
def gateway(
    gateway_factory: Callable[[str], RunningGateway], upstream: ScriptedUpstream
) -> RunningGateway:
    return gateway_factory(
        f"""
        deployments:
          a: {{kind: openai, base_url: "{upstream.base_url}", model: m, supports_prefill: true}}
        models:
          assistant:
            deployments: [a]
            lifecycle: {{max_attempts: 3, backoff: {{base_s: 0.01, max_s: 0.05}}}}
        """
    )


def client(gw: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="tk-test", max_retries=0)


def events(gw: RunningGateway, body: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
    """The raw SSE events of a streamed /v1/messages answer, in order."""
    out = []
    with gw.http.stream("POST", "/v1/messages", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        block = ""
        for line in r.iter_lines():
            if line.startswith("event:"):
                block = line[6:].strip()
            elif line.startswith("data:"):
                out.append((block, orjson.loads(line[5:])))
    return out


def test_create_maps_onto_chat_and_back(
    gateway: RunningGateway, upstream: ScriptedUpstream
) -> None:
    upstream.script(Step(content="Bonjour.", prompt_tokens=12, completion_tokens=2))
    raw = client(gateway).messages.with_raw_response.create(
        model="assistant",
        max_tokens=64,
        system=[
            {"type": "text", "text": "Answer in French.", "cache_control": {"type": "ephemeral"}}
        ],
        messages=[{"role": "user", "content": "Hello"}],
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
        extra_body={"temperature": 0.3},
    )
    msg = raw.parse()
    assert msg.content[0].type == "text" and msg.content[0].text == "Bonjour."
    assert msg.stop_reason == "end_turn" and msg.model == "assistant"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (12, 2)
    sent = upstream.requests[-1].body
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
    ]
    assert (sent["max_tokens"], sent["stop"], sent["temperature"], sent["user"]) == (
        64, ["END"], 0.3, "u-1",
    )  # fmt: skip
    rec = gateway.record(raw.headers["x-turnout-request-id"])
    assert rec["wire"] == "messages" and rec["outcome"] == "completed"
    assert rec["attrs"]["wire_out"] == "chat.completions"
    assert rec["attrs"]["ignored"] == ["cache_control"]
    assert rec["request_body"]["system"][0]["text"] == "Answer in French."  # as the client sent it


def test_stream_sends_the_messages_event_sequence(
    gateway: RunningGateway, upstream: ScriptedUpstream
) -> None:
    upstream.script(Step(content="One two three.", prompt_tokens=5, completion_tokens=3))
    seen = events(
        gateway,
        {
            "model": "assistant",
            "max_tokens": 32,
            "messages": [{"role": "user", "content": "Count"}],
        },
    )
    kinds = [k for k, _ in seen]
    assert kinds[:3] == ["message_start", "ping", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert all(d["type"] == k for k, d in seen)
    text = "".join(d["delta"]["text"] for k, d in seen if k == "content_block_delta")  # type: ignore[index]
    assert text == "One two three."
    delta = seen[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {"input_tokens": 5, "output_tokens": 3}

    upstream.script(Step(content="Streamed by the SDK."))
    with client(gateway).messages.stream(
        model="assistant", max_tokens=32, messages=[{"role": "user", "content": "Go"}]
    ) as stream:
        assert "".join(stream.text_stream) == "Streamed by the SDK."
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_tool_use_round_trip(gateway: RunningGateway, upstream: ScriptedUpstream) -> None:
    call = {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    upstream.script(Step(content=None, tool_calls=[call], finish_reason="tool_calls"))
    c = client(gateway)
    first = c.messages.create(
        model="assistant",
        max_tokens=64,
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    use = first.content[0]
    assert first.stop_reason == "tool_use"
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"}
    sent = upstream.requests[-1].body
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    assert sent["tools"][0]["function"]["parameters"] == TOOLS[0]["input_schema"]

    upstream.script(Step(content="It is sunny in Paris."))
    second = c.messages.create(
        model="assistant",
        max_tokens=64,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [use.model_dump(include={"type", "id", "name", "input"})],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
    )
    assert second.content[0].text == "It is sunny in Paris."  # type: ignore[union-attr]
    turns = upstream.requests[-1].body["messages"]
    assert turns[1]["tool_calls"][0]["id"] == "call_1"
    assert turns[1]["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'
    assert turns[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    assert turns[3] == {"role": "user", "content": "Thanks"}


def test_streamed_tool_use_arrives_as_input_json_deltas(
    gateway: RunningGateway, upstream: ScriptedUpstream
) -> None:
    call = {"id": "call_9", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    upstream.script(Step(content=None, tool_calls=[call], finish_reason="tool_calls"))
    with client(gateway).messages.stream(
        model="assistant",
        max_tokens=64,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "input", None)) for b in final.content] == [
        ("tool_use", {"city": "Oslo"})
    ]


def test_overloaded_upstream_is_a_529_overloaded_error(
    gateway: RunningGateway, upstream: ScriptedUpstream
) -> None:
    upstream.script(*[Step(status=503)] * 3)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client(gateway).messages.create(
            model="assistant", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    err = caught.value
    assert err.status_code == 529
    assert err.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert err.response.headers["x-turnout-failure"] == "overloaded"
    rec = gateway.record(err.response.headers["x-turnout-request-id"])
    assert rec["outcome"] == "failed_upstream" and rec["wire"] == "messages"
    assert [a["error"] for a in rec["attempt_log"]] == ["overloaded"] * 3


def test_rate_limit_keeps_retry_after_and_its_type(
    gateway: RunningGateway, upstream: ScriptedUpstream
) -> None:
    upstream.script(*[Step(status=429, headers={"retry-after": "7"})] * 3)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client(gateway).messages.create(
            model="assistant", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert caught.value.response.headers["retry-after"] == "7"


def test_a_stream_broken_midway_is_continued_without_a_seam(
    gateway: RunningGateway, upstream: ScriptedUpstream
) -> None:
    text = "alpha beta gamma delta epsilon"
    upstream.script(Step(content=text, break_after_chunks=2), Step(content=text))
    with client(gateway).messages.stream(
        model="assistant", max_tokens=64, messages=[{"role": "user", "content": "Say it"}]
    ) as stream:
        assert "".join(stream.text_stream) == text
        rid = stream.response.headers["x-turnout-request-id"]
    rec = gateway.record(rid)
    assert rec["outcome"] == "completed"
    assert [a.get("continuation") for a in rec["attempt_log"]] == [None, True]
    assert upstream.requests[1].prefill == "alpha beta"


def test_a_failure_after_the_stream_began_is_an_error_event(
    gateway: RunningGateway, upstream: ScriptedUpstream
) -> None:
    upstream.script(*[Step(content="a b c d e f", break_after_chunks=2)] * 3)
    seen = events(
        gateway,
        {"model": "assistant", "max_tokens": 32, "messages": [{"role": "user", "content": "x"}]},
    )
    kind, data = seen[-1]
    assert kind == "error" and data["error"]["type"] == "api_error"  # type: ignore[index]
    assert "message_stop" not in [k for k, _ in seen]


@pytest.mark.parametrize(
    ("change", "param", "words"),
    [
        ({"max_tokens": None}, "max_tokens", "integer"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking", "thinking"),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            "tools[0].type",
            "built-in",
        ),
        ({"temperature": 1.5}, "temperature", "between 0 and 1"),
        ({"mcp_servers": []}, "mcp_servers", "MCP"),
        ({"frobnicate": 1}, "frobnicate", "not supported"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role", "user, assistant"),
    ],
)
def test_what_cannot_be_served_is_a_400_in_anthropic_shape(
    gateway: RunningGateway, change: dict[str, object], param: str, words: str
) -> None:
    body = {"model": "assistant", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    body = {k: v for k, v in {**body, **change}.items() if v is not None}
    r = gateway.post("/v1/messages", body)
    assert r.status_code == 400
    assert r.json()["type"] == "error"
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and words in err["message"]
    assert param.split("[")[0].split(".")[0] in err["message"] or param in err["message"]
    assert gateway.record(r.headers["x-turnout-request-id"])["outcome"] == "rejected"


def test_unknown_model_is_not_found_error(gateway: RunningGateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client(gateway).messages.create(
            model="nope", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_count_tokens_estimates_where_no_anthropic_deployment_counts(
    gateway: RunningGateway,
) -> None:
    r = gateway.post(
        "/v1/messages/count_tokens",
        {"model": "assistant", "messages": [{"role": "user", "content": "x" * 400}]},
    )
    assert r.status_code == 200 and r.headers["x-turnout-estimate"] == "true"
    assert 90 <= r.json()["input_tokens"] <= 110
    r = gateway.http.get("/v1/messages")
    assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"
    assert isinstance(r, httpx.Response)


def test_trace_shows_the_wire_format_in_and_out(
    gateway: RunningGateway, upstream: ScriptedUpstream
) -> None:
    raw = client(gateway).messages.with_raw_response.create(
        model="assistant", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    rid = raw.headers["x-turnout-request-id"]
    gateway.gateway.writer.flush()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    trace = subprocess.run(
        [
            sys.executable,
            "-m",
            "turnout",
            "trace",
            rid,
            "--store",
            gateway.gateway.config.store.url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert trace.returncode == 0, trace.stderr
    assert "wire messages→chat.completions" in trace.stdout
    assert "wire_out=chat.completions" in trace.stdout  # on the attempting event


def test_migration_replay_reads_a_messages_record_as_chat(
    gateway: RunningGateway, upstream: ScriptedUpstream
) -> None:
    from turnout.migrate.records import select

    client(gateway).messages.create(
        model="assistant",
        max_tokens=8,
        system="Be brief.",
        messages=[{"role": "user", "content": [{"type": "text", "text": "capital of France?"}]}],
    )
    gateway.gateway.writer.flush()
    (recorded,) = select(gateway.gateway.config.store.url, models=("assistant",))
    assert recorded.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "capital of France?"},
    ]
    assert recorded.body["max_tokens"] == 8 and recorded.body["model"] == "assistant"


def test_a_cut_answer_is_max_tokens_and_the_clients_limit_is_a_ceiling(
    gateway: RunningGateway, upstream: ScriptedUpstream
) -> None:
    upstream.script(Step(content="Paris is the", finish_reason="length"))
    raw = client(gateway).messages.with_raw_response.create(
        model="assistant", max_tokens=3, messages=[{"role": "user", "content": "capital?"}]
    )
    answer = raw.parse()
    assert answer.stop_reason == "max_tokens"
    assert answer.content[0].text == "Paris is the"  # type: ignore[union-attr]
    assert [r.max_tokens for r in upstream.requests] == [3]  # never raised, never retried
    rec = gateway.record(raw.headers["x-turnout-request-id"])
    assert rec["outcome"] == "truncated" and rec["wire"] == "messages"


def test_an_invalid_tool_call_is_reasked_and_the_client_sees_the_good_one(
    gateway: RunningGateway, upstream: ScriptedUpstream
) -> None:
    bad = {"id": "call_1", "function": {"name": "get_wether", "arguments": {"city": "Paris"}}}
    good = {"id": "call_2", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    upstream.script(
        Step(content=None, tool_calls=[bad], finish_reason="tool_calls"),
        Step(content=None, tool_calls=[good], finish_reason="tool_calls"),
    )
    raw = client(gateway).messages.with_raw_response.create(
        model="assistant",
        max_tokens=64,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    use = raw.parse().content[0]
    assert use.type == "tool_use" and use.name == "get_weather"  # type: ignore[union-attr]
    rec = gateway.record(raw.headers["x-turnout-request-id"])
    assert "reasking" in [e["state"] for e in rec["events"]]
    assert [a.get("error") for a in rec["attempt_log"]] == ["bad_tool_call", None]
