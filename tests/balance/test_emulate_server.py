"""`turnout emulate` as a real process on loopback: OpenAI wire format, pacing, vLLM metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from emulators import Emulator

from turnout.routing.signals import vllm_signal


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    e = Emulator(
        "--step-base-ms",
        "1",
        "--step-per-seq-ms",
        "0",
        "--step-per-kv-us",
        "0",
        "--prefill-tps",
        "1000000",
        "--max-batch",
        "8",
        "--model",
        "emu-8b",
    )
    yield e
    e.stop()


@pytest.fixture
def one_slot() -> Iterator[Emulator]:
    e = Emulator(
        "--step-base-ms",
        "5",
        "--step-per-seq-ms",
        "0",
        "--step-per-kv-us",
        "0",
        "--prefill-tps",
        "1000000",
        "--max-batch",
        "1",
    )
    yield e
    e.stop()


def chat(n: int | None = None, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {"model": "emu-8b", "messages": [{"role": "user", "content": "hi"}]}
    if n is not None:
        body["emulate"] = {"output_tokens": n}
    body.update(extra)
    return body


def events(response: httpx.Response) -> list[dict[str, Any]]:
    out = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


def test_a_streamed_answer_has_the_requested_length_and_usage(emulator: Emulator) -> None:
    body = chat(12, stream=True, stream_options={"include_usage": True})
    with emulator.http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        chunks = events(r)
    words = [c["choices"][0]["delta"]["content"] for c in chunks if c["choices"]]
    assert len([w for w in words if w]) == 12
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 12


def test_max_tokens_cuts_the_answer_short(emulator: Emulator) -> None:
    r = emulator.http.post("/v1/chat/completions", json=chat(50, max_tokens=5))
    data = r.json()
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 5
    assert len(data["choices"][0]["message"]["content"].split()) == 5


def test_the_length_may_come_from_a_header_or_a_seeded_draw(emulator: Emulator) -> None:
    r = emulator.http.post(
        "/v1/chat/completions", json=chat(), headers={"x-emulate-output-tokens": "7"}
    )
    assert r.json()["usage"]["completion_tokens"] == 7
    drawn = emulator.http.post("/v1/completions", json={"prompt": "x" * 400, "max_tokens": 4000})
    data = drawn.json()
    assert data["object"] == "text_completion"
    assert data["usage"]["completion_tokens"] >= 1
    assert data["usage"]["prompt_tokens"] == 100  # ~4 characters a token


def test_bad_requests_get_openai_shaped_errors(emulator: Emulator) -> None:
    r = emulator.http.post("/v1/chat/completions", content=b"{not json")
    assert r.status_code == 400 and "error" in r.json()
    r = emulator.http.post("/v1/chat/completions", json={"model": "x"})
    assert r.status_code == 400


def test_models_and_vllm_style_metrics(emulator: Emulator) -> None:
    assert emulator.http.get("/v1/models").json()["data"][0]["id"] == "emu-8b"
    text = emulator.metrics().text
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:gpu_cache_usage_perc",
        "vllm:generation_tokens_total",
    ):
        assert f'{name}{{model_name="emu-8b"}}' in text
    generated = vllm_signal(text, at=0.0, model="emu-8b").generation_tokens_total
    assert generated is not None and generated > 0


def _wait_for(emulator: Emulator, running: int, waiting: int) -> tuple[int | None, ...]:
    """The state it reached: the one asked for, or the last seen after 20 s."""
    deadline = time.monotonic() + 20
    while True:
        s = vllm_signal(emulator.metrics().text, at=0.0)
        if (s.running, s.waiting) == (running, waiting) or time.monotonic() > deadline:
            return s.running, s.waiting
        time.sleep(0.02)


def test_beyond_the_batch_requests_wait_and_metrics_say_so(one_slot: Emulator) -> None:
    body = chat(2000, stream=True)  # 2000 steps of 5 ms: long enough to be seen
    with (
        httpx.Client(base_url=one_slot.url, timeout=30) as a,
        httpx.Client(base_url=one_slot.url, timeout=30) as b,
    ):
        with a.stream("POST", "/v1/chat/completions", json=body) as first:
            lines = first.iter_lines()  # kept: a dropped iterator would close the stream
            next(lines)  # it is decoding
            with b.stream("POST", "/v1/chat/completions", json=body):
                assert _wait_for(one_slot, running=1, waiting=1) == (1, 1)
        # Both clients went away: their slot and queue place are given back.
        assert _wait_for(one_slot, running=0, waiting=0) == (0, 0)
