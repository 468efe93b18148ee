"""Deployments with `api: responses`: called through /v1/responses, whatever the client spoke."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import openai
import pytest
from gateway_harness import RunningGateway
from responses_upstream import ResponsesUpstream
from upstream import ScriptedUpstream, Step

Factory = Callable[[str], RunningGateway]


@pytest.fixture
def native() -> Iterator[ResponsesUpstream]:
    with ResponsesUpstream() as up:
        yield up


def config(native: ResponsesUpstream, fallback: ScriptedUpstream | None = None) -> str:
    deps = f'  native: {{kind: openai, api: responses, base_url: "{native.base_url}", model: m}}\n'
    names = "native"
    if fallback is not None:
        deps += f'  chat: {{kind: openai, base_url: "{fallback.base_url}", model: c}}\n'
        names += ", chat"
    return f"""
deployments:
{deps}
models:
  assistant:
    deployments: [{names}]
    lifecycle: {{max_attempts: 2, backoff: {{base_s: 0.01, max_s: 0.02}}}}
"""


def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def test_a_responses_client_reaches_a_responses_upstream(
    native: ResponsesUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(native))
    native.script(Step(content="Native hello.", prompt_tokens=4, completion_tokens=2))
    r = client(gw).responses.create(
        model="assistant", input="hi", instructions="Short.", max_output_tokens=16
    )
    assert r.output_text == "Native hello."
    assert (r.usage.input_tokens, r.usage.output_tokens) == (4, 2)
    got = native.wait_for_requests(1)[0]
    assert got.path == "/v1/responses"
    assert got.body["store"] is False and got.body["max_output_tokens"] == 16
    assert got.body["input"] == [
        {"role": "system", "content": "Short."},
        {"role": "user", "content": "hi"},
    ]
    assert gw.record(r.id.removeprefix("resp_"))["attrs"]["wire_out"] == "responses"


def test_a_chat_client_is_served_by_a_responses_upstream_streaming_tool_calls(
    native: ResponsesUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(native))
    call = {"id": "call_n1", "function": {"name": "lookup", "arguments": {"q": "tides today"}}}
    native.script(Step(content=None, tool_calls=[call], finish_reason="tool_calls"))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    stream = client(gw).chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "tides?"}],
        tools=tools,  # type: ignore[arg-type]
        stream=True,
    )
    args, names, finish = "", set(), None
    for chunk in stream:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or ():
                args += tc.function.arguments or "" if tc.function else ""
                if tc.function and tc.function.name:
                    names.add(tc.function.name)
            finish = choice.finish_reason or finish
    assert json.loads(args) == {"q": "tides today"} and names == {"lookup"}
    assert finish == "tool_calls"
    sent = native.wait_for_requests(1)[0].body
    assert sent["tools"] == [{"type": "function", "name": "lookup", "parameters": {}}]


def test_a_responses_stream_from_a_responses_upstream(
    native: ResponsesUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(native))
    native.script(Step(content="Streamed natively.", prompt_tokens=3, completion_tokens=2))
    with client(gw).responses.stream(model="assistant", input="hi") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == "Streamed natively."
    assert final.usage is not None and final.usage.output_tokens == 2


def test_built_in_tools_pass_through_when_every_deployment_speaks_responses(
    native: ResponsesUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(native))
    native.script(Step(content="Searched."))
    r = client(gw).responses.create(
        model="assistant", input="news?", tools=[{"type": "web_search"}]
    )
    assert r.output_text == "Searched."
    assert native.wait_for_requests(1)[0].body["tools"] == [{"type": "web_search"}]


def test_built_in_tools_are_refused_where_a_deployment_cannot_run_them(
    native: ResponsesUpstream, upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(native, upstream))
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).responses.create(
            model="assistant", input="news?", tools=[{"type": "web_search"}]
        )
    assert err.value.body["param"] == "tools[0]" and "chat" in err.value.message
    assert native.requests == [] and upstream.requests == []


def test_a_rate_limited_responses_upstream_falls_back_to_a_chat_one(
    native: ResponsesUpstream, upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(native, upstream))
    native.script(Step(status=429, headers={"retry-after": "30"}))
    upstream.script(Step(content="From the fallback."))
    r = client(gw).responses.create(model="assistant", input="hi")
    assert r.output_text == "From the fallback."
    rec = gw.record(r.id.removeprefix("resp_"))
    assert [a["deployment"] for a in rec["attempt_log"]] == ["native", "chat"]
    assert rec["attempt_log"][0]["error"] == "rate_limited"
    assert rec["attrs"]["wire_out"] == "chat.completions"


def test_a_broken_responses_stream_is_a_broken_stream(
    native: ResponsesUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(native))
    native.script(Step(content="a b c d e f g", break_after_chunks=2))
    events = list(client(gw).responses.create(model="assistant", input="hi", stream=True))
    assert events[-1].type == "response.failed"
    rec = gw.record(events[-1].response.id.removeprefix("resp_"))
    assert rec["attempt_log"][0]["error"] == "broken_stream"


def test_a_chat_field_the_responses_api_cannot_express_is_refused(
    native: ResponsesUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(native))
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "hi"}], stop=["\n"]
        )
    assert "stop" in err.value.message and native.requests == []


def test_api_responses_is_only_for_kind_openai() -> None:
    from turnout.config import ConfigError, parse_config

    bad = "deployments:\n  e: {kind: embedded, model: smollm2-135m, api: responses}\n"
    with pytest.raises(ConfigError, match="api"):
        parse_config(bad + "models:\n  m: {deployments: [e]}\n", "c.yaml")
