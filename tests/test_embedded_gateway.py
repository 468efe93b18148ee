"""The embedded default on the real SmolLM2 model, driven by the official openai SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from gateway_harness import RunningGateway, start_gateway
from lifecycle_helpers import check_run

EMBEDDED = """
deployments:
  edge: {kind: embedded, model: smollm2-135m, max_concurrency: 2}
models:
  local: {deployments: [edge], lifecycle: {on_truncation: accept}}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(EMBEDDED, tmp_path_factory.mktemp("embedded") / "turnout.db")
    yield running
    running.stop()


@pytest.fixture
def client(gw: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as c:
        yield c


def test_sdk_chat_completion(gw: RunningGateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="local",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=24,
        temperature=0,
    )
    reply = raw.parse()
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert raw.headers["x-turnout-deployment"] == "edge"
    rec = gw.record(raw.headers["x-turnout-request-id"])
    assert rec["outcome"] == raw.headers["x-turnout-outcome"]
    assert rec["completion_tokens"] == reply.usage.completion_tokens


def test_sdk_streaming_token_by_token_with_usage(gw: RunningGateway, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "Count from one to ten."}],
        max_tokens=30,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finishes, usage = [], [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert len(pieces) > 5  # token by token, not one blob
    assert finishes in (["stop"], ["length"])
    assert usage is not None and 0 < usage.completion_tokens <= 30


def test_sdk_streaming_without_usage_hides_the_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "Hi"}], max_tokens=5, stream=True
        )
    )
    assert chunks and all(c.choices for c in chunks)


def test_async_sdk_concurrent_requests(gw: RunningGateway) -> None:
    async def main() -> list[str]:
        async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused") as c:

            async def one(i: int) -> str:
                r = await c.chat.completions.create(
                    model="local",
                    messages=[{"role": "user", "content": f"Say the number {i}."}],
                    max_tokens=12,
                )
                return r.choices[0].message.content or ""

            async def streamed() -> str:
                s = await c.chat.completions.create(
                    model="local",
                    messages=[{"role": "user", "content": "Hello"}],
                    max_tokens=12,
                    stream=True,
                )
                return "".join([ch.choices[0].delta.content or "" async for ch in s if ch.choices])

            return await asyncio.gather(one(1), one(2), one(3), streamed())

    answers = asyncio.run(main())
    assert all(answers)


def test_json_schema_output_from_the_real_model_validates(
    gw: RunningGateway, client: openai.OpenAI
) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    raw = client.chat.completions.with_raw_response.create(
        model="local",
        max_tokens=60,
        temperature=0,
        messages=[{"role": "user", "content": "Invent a person. Reply in JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
    )
    reply = raw.parse()
    data = json.loads(reply.choices[0].message.content or "")
    assert isinstance(data["name"], str) and isinstance(data["age"], int)
    assert raw.headers["x-turnout-outcome"] == "completed"


def test_truncation_on_the_real_model_is_flagged(gw: RunningGateway) -> None:
    r = gw.chat(
        model="local",
        max_tokens=2,
        messages=[{"role": "user", "content": "Write a long poem about the sea."}],
    )
    check_run(
        gw,
        r,
        outcome="truncated",
        path=["received", "routed", "attempting", "validating", "truncated"],
        attempts=[("edge", "ok")],
    )
    assert r.json()["usage"]["completion_tokens"] == 2


def test_text_completion_endpoint(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="local", prompt="The sky is", max_tokens=8, temperature=0
    )
    assert reply.choices[0].text
    assert reply.usage is not None and reply.usage.completion_tokens > 0


def test_models_and_readiness(gw: RunningGateway, client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["local"]
    assert gw.http.get("/readyz").status_code == 200


def test_sdk_sees_openai_shaped_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="local", messages=[], max_tokens=3)


def test_cli_lists_and_traces_the_record(gw: RunningGateway, tmp_path: Path) -> None:
    import subprocess
    import sys

    r = gw.chat(model="local", max_tokens=3)
    rid = r.headers["x-turnout-request-id"]
    gw.gateway.writer.flush()
    store = gw.gateway.config.store.url
    listing = subprocess.run(
        [sys.executable, "-m", "turnout", "requests", "--store", store, "--limit", "50"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0 and rid in listing.stdout
    as_json = subprocess.run(
        [
            sys.executable,
            "-m",
            "turnout",
            "requests",
            "--store",
            store,
            "--json",
            "--outcome",
            "truncated",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert {row["outcome"] for row in json.loads(as_json.stdout)} == {"truncated"}
    trace = subprocess.run(
        [sys.executable, "-m", "turnout", "trace", rid[:16], "--store", store],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert trace.returncode == 0
    for state in ("received", "routed", "attempting", "validating", "truncated"):
        assert state in trace.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "turnout", "trace", "zzzz", "--store", store],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "no request" in missing.stderr
