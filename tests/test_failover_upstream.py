"""The scripted upstream's mid-stream misbehaviours, checked on the wire without the gateway."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from failover_helpers import TEXT, prefix, sse_events
from upstream import CONTEXT_EXCEEDED, ScriptedUpstream, Step


@pytest.fixture
def up() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(Step(content=TEXT)) as server:
        yield server


def chat(up: ScriptedUpstream, messages: list[dict[str, Any]], **body: Any) -> httpx.Response:
    return httpx.post(
        f"{up.base_url}/chat/completions",
        json={"model": "m", "messages": messages, **body},
        timeout=5,
    )


def streamed_text(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict) and e.get("choices")
    )


def test_a_trailing_assistant_message_is_continued_not_repeated(up: ScriptedUpstream) -> None:
    question = {"role": "user", "content": "q"}
    said = {"role": "assistant", "content": prefix(20)}
    events = sse_events(chat(up, [question, said], stream=True).text)
    assert prefix(20) + streamed_text(events) == TEXT
    assert events[-1] == "[DONE]"
    whole = chat(up, [question, said]).json()["choices"][0]["message"]["content"]
    assert prefix(20) + whole == TEXT
    assert [r.prefill for r in up.requests] == [prefix(20), prefix(20)]
    # A prefill the scripted text does not start with is ignored, as is continue_prefill=False.
    other = {"role": "assistant", "content": "Something else"}
    assert chat(up, [question, other]).json()["choices"][0]["message"]["content"] == TEXT
    up.script(Step(content=TEXT, continue_prefill=False))
    assert chat(up, [question, said]).json()["choices"][0]["message"]["content"] == TEXT
    assert up.requests[-1].prefill == prefix(20)
    assert chat(up, [question]).json()["choices"][0]["message"]["content"] == TEXT
    assert up.requests[-1].prefill is None


def test_a_break_mid_stream_is_timestamped(up: ScriptedUpstream) -> None:
    up.script(Step(content=TEXT, break_after_chunks=20))
    got = bytearray()
    before = time.monotonic()
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}], "stream": True}
    url = f"{up.base_url}/chat/completions"
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", url, json=body, timeout=5) as r,
    ):
        for part in r.iter_bytes():
            got.extend(part)
    assert streamed_text(sse_events(got.decode())) == prefix(20)
    (broke,) = up.breaks
    assert before <= broke <= time.monotonic()


def test_one_malformed_event_after_n_chunks(up: ScriptedUpstream) -> None:
    up.script(Step(content=TEXT, malformed_after_chunks=10))
    blocks = [
        b for b in chat(up, [{"role": "user", "content": "q"}], stream=True).text.split("\n\n") if b
    ]
    bad = [i for i, b in enumerate(blocks) if not _parses(b)]
    assert len(bad) == 1
    good = [json.loads(b[6:]) for b in blocks if _parses(b) and b != "data: [DONE]"]
    assert streamed_text(good) == TEXT
    assert streamed_text(good[: bad[0]]) == prefix(10)  # the role chunk, then ten words


def test_tool_call_deltas_can_repeat_the_name_and_id(up: ScriptedUpstream) -> None:
    call = {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    up.script(Step(content=None, tool_calls=[call], repeat_tool_call_names=True))
    events = sse_events(chat(up, [{"role": "user", "content": "q"}], stream=True).text)
    deltas = [
        tc
        for e in events
        if isinstance(e, dict) and e.get("choices")
        for tc in e["choices"][0]["delta"].get("tool_calls") or []
    ]
    assert len(deltas) > 2
    assert all(d["function"]["name"] == "get_weather" and d["id"] == "call_1" for d in deltas)
    assert json.loads("".join(d["function"]["arguments"] for d in deltas)) == {"city": "Paris"}


@pytest.mark.parametrize("provider", sorted(CONTEXT_EXCEEDED))
def test_context_exceeded_bodies(up: ScriptedUpstream, provider: str) -> None:
    up.script(Step(status=400, raw=CONTEXT_EXCEEDED[provider]))
    r = chat(up, [{"role": "user", "content": "q"}])
    assert r.status_code == 400
    assert r.json()  # valid JSON, in the provider's shape


def _parses(block: str) -> bool:
    if not block.startswith("data: "):
        return False
    if block == "data: [DONE]":
        return True
    try:
        json.loads(block[6:])
    except ValueError:
        return False
    return True
