"""The Responses API on the real embedded model (SmolLM2-135M), through the official SDK."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from gateway_harness import RunningGateway, start_gateway

EMBEDDED = """
deployments:
  edge: {kind: embedded, model: smollm2-135m, max_concurrency: 1}
models:
  local: {deployments: [edge], lifecycle: {on_truncation: accept}}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(EMBEDDED, tmp_path_factory.mktemp("responses") / "turnout.db")
    yield running
    running.stop()


@pytest.fixture
def client(gw: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as c:
        yield c


def test_a_response_then_a_follow_up_by_previous_response_id(
    gw: RunningGateway, client: openai.OpenAI
) -> None:
    first = client.responses.create(
        model="local", input="What is the capital of France?", max_output_tokens=12,
        temperature=0,
    )  # fmt: skip
    assert first.status in ("completed", "incomplete") and first.output_text
    assert first.usage is not None and first.usage.output_tokens > 0
    second = client.responses.create(
        model="local", input="And of Italy?", previous_response_id=first.id,
        max_output_tokens=8, temperature=0,
    )  # fmt: skip
    assert second.output_text and second.previous_response_id == first.id
    rec = gw.record(second.id.removeprefix("resp_"))
    messages = rec["request_body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == first.output_text
    assert client.responses.retrieve(second.id).output_text == second.output_text


def test_a_streamed_response_on_the_embedded_model(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="local", input="Say hello.", max_output_tokens=8, temperature=0
    ) as stream:
        events = list(stream)
    final = events[-1].response  # response.completed, or .incomplete when cut at the limit
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text and deltas
    assert events[-1].type in ("response.completed", "response.incomplete")
    assert final.usage is not None and final.usage.output_tokens > 0
