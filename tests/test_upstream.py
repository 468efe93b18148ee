"""Tests of the scripted upstream server itself (real HTTP, sync tests)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from upstream import Received, ScriptedUpstream, Step, free_port, split_words


@pytest.fixture
def up() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


async def read_sse(resp: aiohttp.ClientResponse, into: list[Any]) -> None:
    """Append each `data:` payload (parsed JSON, or the string "[DONE]") to `into`."""
    async for raw in resp.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("data: "):
            data = line[len("data: ") :]
            into.append(data if data == "[DONE]" else json.loads(data))


def stream(url: str, body: dict[str, Any]) -> tuple[aiohttp.ClientResponse, list[Any]]:
    async def go() -> tuple[aiohttp.ClientResponse, list[Any]]:
        events: list[Any] = []
        async with aiohttp.ClientSession() as s, s.post(url, json={**body, "stream": True}) as r:
            await read_sse(r, events)
            return r, events

    return asyncio.run(go())


def test_chat_non_stream_shape_and_recording(up: ScriptedUpstream) -> None:
    body = {"model": "my-model", "messages": [{"role": "user", "content": "x" * 40}]}
    out = post(f"{up.base_url}/chat/completions", body, {"Authorization": "Bearer k"})
    assert out["id"].startswith("chatcmpl-")
    assert out["object"] == "chat.completion"
    assert isinstance(out["created"], int)
    assert out["model"] == "my-model"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello from upstream."},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert out["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    assert "system_fingerprint" not in out
    (rec,) = up.wait_for_requests(1)
    assert isinstance(rec, Received)
    assert rec.path == "/v1/chat/completions"
    assert rec.body == body
    assert rec.headers["authorization"] == rec.headers["Authorization"] == "Bearer k"


def test_script_fifo_then_default(up: ScriptedUpstream) -> None:
    up.script(
        Step(content="first", model="m1", system_fingerprint="fp1", prompt_tokens=7),
        Step(content="second", finish_reason="length", completion_tokens=99),
    )
    url = f"{up.base_url}/chat/completions"
    a, b, c = (post(url, {"model": "req", "messages": []}) for _ in range(3))
    assert (a["choices"][0]["message"]["content"], a["model"]) == ("first", "m1")
    assert a["system_fingerprint"] == "fp1"
    assert a["usage"]["prompt_tokens"] == 7
    assert b["choices"][0]["finish_reason"] == "length"
    assert b["usage"]["completion_tokens"] == 99
    assert c["choices"][0]["message"]["content"] == "Hello from upstream."
    assert c["model"] == "req"
    assert len(up.requests) == 3


def test_error_status_and_headers(up: ScriptedUpstream) -> None:
    up.script(Step(status=429, headers={"Retry-After": "1"}), Step(status=503))
    url = f"{up.base_url}/chat/completions"
    with pytest.raises(urllib.error.HTTPError) as e1:
        post(url, {"model": "m", "messages": []})
    assert e1.value.code == 429
    assert e1.value.headers["Retry-After"] == "1"
    err = json.loads(e1.value.read())["error"]
    assert err["type"] == "rate_limit_error"
    assert err["code"] == "rate_limit_exceeded"
    assert err["message"]
    with pytest.raises(urllib.error.HTTPError) as e2:
        post(url, {"model": "m", "messages": [], "stream": True})
    assert e2.value.code == 503
    assert json.loads(e2.value.read())["error"]["type"] == "server_error"


def test_chat_stream_events(up: ScriptedUpstream) -> None:
    content = "  Hello,  streaming\nworld! "
    assert "".join(split_words(content)) == content
    up.script(Step(content=content), Step(content=content))
    url = f"{up.base_url}/chat/completions"
    resp, events = stream(url, {"model": "m", "stream_options": {"include_usage": True}})
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == content
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    # Without include_usage: no usage chunk.
    _, plain = stream(url, {"model": "m"})
    assert plain[-1] == "[DONE]"
    assert plain[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"] and "usage" not in c for c in plain[:-1])


def test_tool_calls_non_stream_and_stream(up: ScriptedUpstream) -> None:
    args = '{"city": "Paris", "unit": "celsius"}'
    tc = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": args}}
    step = Step(content=None, tool_calls=[tc], finish_reason="tool_calls")
    up.script(step, step)
    url = f"{up.base_url}/chat/completions"
    out = post(url, {"model": "m", "messages": []})
    msg = out["choices"][0]["message"]
    assert msg["content"] is None
    assert msg["tool_calls"] == [tc]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    _, events = stream(url, {"model": "m"})
    deltas = [d for c in events[:-1] for d in c["choices"][0]["delta"].get("tool_calls") or []]
    assert deltas[0]["function"]["name"] == "weather"
    assert deltas[0]["id"] == "call_1"
    assert len(deltas) > 2  # arguments really are split
    assert all(d["index"] == 0 for d in deltas)
    assert "".join(d["function"]["arguments"] for d in deltas) == args
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_text_completions_and_models(up: ScriptedUpstream) -> None:
    out = post(f"{up.base_url}/completions", {"model": "m", "prompt": "abc"})
    assert out["object"] == "text_completion"
    assert out["choices"][0]["text"] == "Hello from upstream."
    _, events = stream(f"{up.base_url}/completions", {"model": "m", "prompt": "abc"})
    assert events[-1] == "[DONE]"
    assert "".join(c["choices"][0]["text"] for c in events[:-1]) == "Hello from upstream."
    with urllib.request.urlopen(f"{up.base_url}/models", timeout=5) as r:
        models = json.loads(r.read())
    assert [m["id"] for m in models["data"]] == ["upstream-model"]
    assert [r.path for r in up.requests] == ["/v1/completions", "/v1/completions"]


def test_malformed(up: ScriptedUpstream) -> None:
    up.script(Step(malformed=True), Step(malformed=True))
    url = f"{up.base_url}/chat/completions"
    with pytest.raises(json.JSONDecodeError):
        post(url, {"model": "m", "messages": []})
    with pytest.raises(json.JSONDecodeError):
        stream(url, {"model": "m"})


def test_break_after_chunks_is_a_client_error(up: ScriptedUpstream) -> None:
    up.script(Step(content="a b c d e", break_after_chunks=2))
    events: list[Any] = []

    async def go() -> None:
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"{up.base_url}/chat/completions", json={"stream": True}) as r,
        ):
            await read_sse(r, events)

    with pytest.raises(aiohttp.ClientPayloadError):
        asyncio.run(go())
    assert [c["choices"][0]["delta"].get("content") for c in events] == ["", "a", " b"]


def test_drop_connection_and_refused_port(up: ScriptedUpstream) -> None:
    up.script(Step(drop_connection=True))

    async def go(url: str) -> None:
        async with aiohttp.ClientSession() as s:
            await s.post(url, json={"model": "m"})

    with pytest.raises(aiohttp.ServerDisconnectedError):
        asyncio.run(go(f"{up.base_url}/chat/completions"))
    with pytest.raises(aiohttp.ClientConnectorError):
        asyncio.run(go(f"http://127.0.0.1:{free_port()}/v1/chat/completions"))


def test_delays(up: ScriptedUpstream) -> None:
    up.script(Step(delay_s=0.3), Step(content="a b c", chunk_delay_s=0.1))
    url = f"{up.base_url}/chat/completions"
    t0 = time.monotonic()
    post(url, {"model": "m", "messages": []})
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    stream(url, {"model": "m"})
    assert time.monotonic() - t0 >= 0.5  # 5 chunks after the first, 0.1 s apart


def test_stall_hangs_and_counts_disconnect(up: ScriptedUpstream) -> None:
    up.script(Step(content="a b c", stall_after_chunks=1))
    events: list[Any] = []

    async def go() -> None:
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"{up.base_url}/chat/completions", json={"stream": True}) as r,
        ):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(read_sse(r, events), 0.5)
        # session closed: the client went away

    asyncio.run(go())
    assert [c["choices"][0]["delta"].get("content") for c in events] == ["", "a"]
    assert up.wait_for_disconnects(1, timeout=2) == 1


def test_stop_is_prompt_with_stalled_streams() -> None:
    server = ScriptedUpstream(Step(stall_after_chunks=0)).start()
    errors: list[BaseException] = []

    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            resps = await asyncio.gather(
                *(
                    s.post(f"{server.base_url}/chat/completions", json={"stream": True})
                    for _ in range(5)
                )
            )
            t0 = time.monotonic()
            await asyncio.to_thread(server.stop)
            assert time.monotonic() - t0 < 2
            for r in resps:
                try:
                    await asyncio.wait_for(r.read(), 2)
                except aiohttp.ClientPayloadError as e:
                    errors.append(e)
                finally:
                    r.close()

    asyncio.run(go())
    assert len(errors) == 5  # streams were cut, not completed
    assert server.disconnects == 0
    server.stop()  # idempotent


def test_concurrent_requests(up: ScriptedUpstream) -> None:
    up.default = Step(content="one two three", chunk_delay_s=0.05)

    async def one(s: aiohttp.ClientSession, i: int) -> str:
        body = {"stream": True, "messages": [{"role": "user", "content": str(i)}]}
        async with s.post(f"{up.base_url}/chat/completions", json=body) as r:
            events: list[Any] = []
            await read_sse(r, events)
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in events[:-1])

    async def go() -> list[str]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            return await asyncio.gather(*(one(s, i) for i in range(100)))

    t0 = time.monotonic()
    assert asyncio.run(go()) == ["one two three"] * 100
    assert time.monotonic() - t0 < 3  # served concurrently, not one after another
    assert len(up.wait_for_requests(100)) == 100
