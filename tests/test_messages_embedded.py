"""`/v1/messages` on the embedded SmolLM2 model, driven by the official Anthropic SDK."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest
from gateway_harness import RunningGateway, start_gateway

EMBEDDED = """
deployments:
  edge: {kind: embedded, model: smollm2-135m, max_concurrency: 1, supports_tools: true}
models:
  local: {deployments: [edge], lifecycle: {on_truncation: accept}}
"""
TOOLS = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(EMBEDDED, tmp_path_factory.mktemp("messages") / "turnout.db")
    yield running
    running.stop()


@pytest.fixture
def client(gw: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="tk-local", max_retries=0)


def test_create_and_stream_agree_with_the_record(
    gw: RunningGateway, client: anthropic.Anthropic
) -> None:
    greedy = {"temperature": 0}  # the same answer on every run: never an empty one
    raw = client.messages.with_raw_response.create(
        model="local",
        max_tokens=8,
        messages=[{"role": "user", "content": "Say hello."}],
        extra_body=greedy,
    )
    msg = raw.parse()
    assert msg.content and msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason in ("end_turn", "max_tokens") and msg.usage.output_tokens <= 8
    rec = gw.record(raw.headers["x-turnout-request-id"])
    assert rec["wire"] == "messages" and rec["attrs"]["wire_out"] == "chat.completions"
    assert rec["completion_tokens"] == msg.usage.output_tokens

    with client.messages.stream(
        model="local",
        max_tokens=8,
        messages=[{"role": "user", "content": "Count to three."}],
        extra_body=greedy,
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text  # type: ignore[union-attr]
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_forced_tool_use_round_trip(client: anthropic.Anthropic) -> None:
    first = client.messages.create(
        model="local",
        max_tokens=48,
        extra_body={"temperature": 0},  # greedy: the same answer on every run
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    uses = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use" and uses and uses[0].name == "get_weather"
    assert isinstance(uses[0].input, dict)
    use = uses[0].model_dump(include={"type", "id", "name", "input"})
    result = {"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"}
    second = client.messages.create(
        model="local",
        max_tokens=64,
        extra_body={"temperature": 0},
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [result]},
        ],
    )  # type: ignore[list-item]
    assert second.content and second.stop_reason in ("end_turn", "max_tokens", "tool_use")


def test_an_image_is_refused_clearly_where_the_model_cannot_see(
    client: anthropic.Anthropic,
) -> None:
    image = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="local",
            max_tokens=8,
            messages=[{"role": "user", "content": [{"type": "image", "source": image}]}],  # type: ignore[list-item]
        )
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "text" in caught.value.message
