"""`kind: anthropic` deployments: turnout speaks Anthropic's Messages API natively to the upstream,
whether the client spoke chat completions or Messages; its errors, usage and stop reasons map
into turnout's failure classes and record."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import anthropic
import openai
import orjson
import pytest
from anthropic_upstream import AnthropicUpstream, Turn
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

SECRET = "sk-ant-test-0123456789abcdef"


@pytest.fixture
def claude() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream() as up:
        yield up


@pytest.fixture
def gateway(
    gateway_factory: Callable[[str], RunningGateway],
    claude: AnthropicUpstream,
    upstream: ScriptedUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> RunningGateway:
    monkeypatch.setenv("CLAUDE_KEY", SECRET)
    return gateway_factory(
        f"""
        deployments:
          claude:
            kind: anthropic
            base_url: "{claude.base_url}"
            model: claude-test
            api_key_env: CLAUDE_KEY
            price: {{input_per_mtok: 3, output_per_mtok: 15}}
          backup: {{kind: openai, base_url: "{upstream.base_url}", model: m}}
        models:
          assistant:
            deployments: [claude]
            lifecycle: {{max_attempts: 3, backoff: {{base_s: 0.01, max_s: 0.05}}}}
          with-fallback:
            deployments: [claude, backup]
            lifecycle: {{max_attempts: 2, same_deployment_retries: 0}}
        """
    )


def chat(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="tk-test", max_retries=0)


def messages(gw: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="tk-test", max_retries=0)


def test_a_chat_client_is_served_through_the_messages_api(
    gateway: RunningGateway, claude: AnthropicUpstream
) -> None:
    claude.script(Turn(text="Hi there.", stop_sequence="END", stop_reason="stop_sequence",
                       input_tokens=20, cache_read_input_tokens=5, output_tokens=3))  # fmt: skip
    raw = chat(gateway).chat.completions.with_raw_response.create(
        model="assistant",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Hello"},
        ],
        max_tokens=40,
        stop=["END"],
        temperature=0.5,
        user="u-7",
    )
    done = raw.parse()
    assert done.choices[0].message.content == "Hi there."
    assert done.choices[0].finish_reason == "stop"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (25, 3)  # type: ignore[union-attr]
    seen = claude.requests[-1]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == SECRET
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.body == {
        "model": "claude-test",
        "max_tokens": 40,
        "system": "Be terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "temperature": 0.5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-7"},
    }
    rec = gateway.record(raw.headers["x-turnout-request-id"])
    assert rec["wire"] == "chat.completions" and rec["attrs"]["wire_out"] == "messages"
    assert rec["attempt_log"][0]["cost_usd"] == pytest.approx((25 * 3 + 3 * 15) / 1e6)
    assert SECRET not in orjson.dumps(rec).decode()


def test_streamed_tool_calls_come_back_as_chat_chunks(
    gateway: RunningGateway, claude: AnthropicUpstream
) -> None:
    claude.script(
        Turn(text="Let me check.", tool_uses=[{"name": "get_weather", "input": {"city": "Rome"}}])
    )
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]
    stream = chat(gateway).chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=tools,  # type: ignore[arg-type]
        tool_choice="required",
        parallel_tool_calls=False,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, args, finish, usage = "", "", None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for c in chunk.choices:
            text += c.delta.content or ""
            for call in c.delta.tool_calls or ():
                args += call.function.arguments or ""  # type: ignore[union-attr]
            finish = c.finish_reason or finish
    assert text == "Let me check." and orjson.loads(args) == {"city": "Rome"}
    assert finish == "tool_calls" and usage is not None and usage.completion_tokens == 7
    sent = claude.requests[-1].body
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert sent["tools"] == [{"name": "get_weather", "input_schema": {"type": "object"}}]


def test_a_messages_client_round_trips_tools_through_an_anthropic_upstream(
    gateway: RunningGateway, claude: AnthropicUpstream
) -> None:
    claude.script(
        Turn(text="", tool_uses=[{"id": "toolu_A", "name": "lookup", "input": {"q": "x"}}])
    )
    c = messages(gateway)
    tools = [{"name": "lookup", "input_schema": {"type": "object"}}]
    first = c.messages.create(
        model="assistant", max_tokens=50, tools=tools,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "Find x"}],
    )  # fmt: skip
    assert first.stop_reason == "tool_use" and first.content[0].id == "toolu_A"  # type: ignore[union-attr]
    claude.script(Turn(text="Found it."))
    use = {"type": "tool_use", "id": "toolu_A", "name": "lookup", "input": {"q": "x"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_A", "is_error": True, "content": "no"}
    second = c.messages.create(
        model="assistant",
        max_tokens=50,
        tools=tools,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "Find x"},
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [result]},
        ],
    )  # type: ignore[list-item]
    assert second.content[0].text == "Found it."  # type: ignore[union-attr]
    assert claude.requests[-1].body["messages"][1:] == [
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
    ]


def test_overloaded_529_is_retried_then_falls_back(
    gateway: RunningGateway, claude: AnthropicUpstream, upstream: ScriptedUpstream
) -> None:
    claude.script(Turn(status=529))
    upstream.script(Step(content="From the backup."))
    raw = chat(gateway).chat.completions.with_raw_response.create(
        model="with-fallback", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().choices[0].message.content == "From the backup."
    rec = gateway.record(raw.headers["x-turnout-request-id"])
    assert [(a["deployment"], a.get("error"), a.get("status")) for a in rec["attempt_log"]] == [
        ("claude", "overloaded", 529), ("backup", None, None),
    ]  # fmt: skip
    assert rec["attrs"]["wire_out"] == "chat.completions"  # the attempt that answered


def test_rate_limit_with_retry_after_then_success(
    gateway: RunningGateway, claude: AnthropicUpstream
) -> None:
    claude.script(Turn(status=429, headers={"retry-after": "0"}), Turn(text="Now it works."))
    raw = chat(gateway).chat.completions.with_raw_response.create(
        model="assistant", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().choices[0].message.content == "Now it works."
    rec = gateway.record(raw.headers["x-turnout-request-id"])
    assert [a.get("error") for a in rec["attempt_log"]] == ["rate_limited", None]


def test_final_overload_reaches_each_client_in_its_own_format(
    gateway: RunningGateway, claude: AnthropicUpstream
) -> None:
    claude.script(*[Turn(status=529, error_message="Overloaded")] * 6)
    with pytest.raises(openai.APIStatusError) as oa:
        chat(gateway).chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "hi"}]
        )
    assert oa.value.status_code == 503
    assert oa.value.body["code"] == "overloaded_error"  # type: ignore[index]
    with pytest.raises(anthropic.APIStatusError) as an:
        messages(gateway).messages.create(
            model="assistant", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert an.value.status_code == 529
    assert an.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert SECRET not in an.value.response.text


def test_prompt_too_long_is_context_exceeded(
    gateway: RunningGateway, claude: AnthropicUpstream
) -> None:
    claude.script(
        Turn(status=400, error_message="prompt is too long: 208344 tokens > 200000 maximum")
    )
    with pytest.raises(openai.BadRequestError) as caught:
        chat(gateway).chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.response.headers["x-turnout-failure"] == "context_exceeded"
    assert "prompt is too long" in caught.value.message


def test_a_broken_anthropic_stream_is_continued_by_prefill(
    gateway: RunningGateway, claude: AnthropicUpstream
) -> None:
    text = "one two three four five six"
    claude.script(Turn(text=text, break_after_deltas=3), Turn(text=" four five six"))
    with messages(gateway).messages.stream(
        model="assistant", max_tokens=50, messages=[{"role": "user", "content": "Count"}]
    ) as stream:
        assert "".join(stream.text_stream) == text
        rid = stream.response.headers["x-turnout-request-id"]
    resumed = claude.requests[1].body["messages"][-1]
    assert resumed == {"role": "assistant", "content": [{"type": "text", "text": "one two three"}]}
    rec = gateway.record(rid)
    assert rec["outcome"] == "completed" and rec["attempt_log"][1]["continuation"] is True


def test_an_error_event_before_any_text_is_an_overload_retried(
    gateway: RunningGateway, claude: AnthropicUpstream
) -> None:
    claude.script(Turn(text="never sent", error_after_deltas=0), Turn(text="Second try."))
    with messages(gateway).messages.stream(
        model="assistant", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert "".join(stream.text_stream) == "Second try."
        rid = stream.response.headers["x-turnout-request-id"]
    assert [a.get("error") for a in gateway.record(rid)["attempt_log"]] == ["overloaded", None]


def test_chat_features_messages_cannot_express_are_refused(
    gateway: RunningGateway, claude: AnthropicUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(gateway).chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "hi"}], seed=7
        )
    assert "cannot express" in caught.value.message and "seed" in caught.value.message
    assert claude.requests == []


def test_count_tokens_asks_the_anthropic_upstream(
    gateway: RunningGateway, claude: AnthropicUpstream
) -> None:
    body = {"model": "assistant", "messages": [{"role": "user", "content": "count me"}]}
    r = gateway.post("/v1/messages/count_tokens", body)
    assert r.status_code == 200 and "x-turnout-estimate" not in r.headers
    assert r.json()["input_tokens"] == len(orjson.dumps(body["messages"])) // 4
    assert claude.requests[-1].body["model"] == "claude-test"
    assert claude.requests[-1].headers["x-api-key"] == SECRET


def test_config_defaults_and_errors_for_kind_anthropic() -> None:
    from turnout.config import ConfigError, parse_config

    dep = parse_config(
        "deployments:\n  c: {kind: anthropic, model: claude-x}\nmodels:\n  m: {deployments: [c]}\n"
    ).deployments["c"]
    assert (dep.base_url, dep.anthropic_version) == ("https://api.anthropic.com", "2023-06-01")
    assert dep.supports_prefill and not dep.supports_structured_output
    assert dep.wire_out("chat") == "messages"
    with pytest.raises(ConfigError, match=r"deployments\.o\.anthropic_version: only for kind"):
        parse_config(
            "deployments:\n  o: {kind: openai, base_url: 'http://x', model: m,"
            " anthropic_version: '2023-06-01'}\n"
        )
