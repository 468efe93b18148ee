"""Injected faults are never recorded: a cassette made under a fault replays the real answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from toolkit_helpers import sse_events, upstream_config
from upstream import ScriptedUpstream, Step

from turnout.testing import Cassette, FaultPlan, InProcessGateway, Mode, faults

ANSWER = "one two three four five six seven"
BODY = {"model": "m", "messages": [{"role": "user", "content": "x"}]}


@pytest.fixture
def up() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(default=Step(content=ANSWER)) as u:
        yield u


def stream(up: ScriptedUpstream, cassette: Cassette, plan: FaultPlan | None) -> list[bytes]:
    gw = InProcessGateway(upstream_config(up.base_url), cassette=cassette, faults=plan).start()
    try:
        return sse_events(gw.url, BODY)[1]
    finally:
        gw.stop()


def words(events: list[bytes]) -> str:
    out = ""
    for e in events:
        if e.startswith(b"data: {"):
            for c in orjson.loads(e[6:]).get("choices") or ():
                out += c.get("delta", {}).get("content") or ""
    return out


def test_a_stream_broken_by_a_fault_while_recording_replays_whole_without_the_fault(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    plan = FaultPlan([faults.broken_stream(at=1, after_chunks=3)])
    live = stream(up, Cassette.load(path, Mode.ONCE), plan)
    assert b"broken_stream" in live[-1] and words(live) == "one two three"

    [entry] = orjson.loads(path.read_bytes())["entries"]
    assert "error" not in entry["response"]  # the real answer, whole
    up.stop()
    clean = stream(up, Cassette.load(path, Mode.NONE), None)
    assert clean[-1] == b"data: [DONE]\n\n" and words(clean) == ANSWER

    again = stream(up, Cassette.load(path, Mode.NONE), FaultPlan(plan.faults))
    assert again == live  # and with the fault, the same break as when it was recorded


def test_the_retry_a_fault_causes_is_not_recorded_as_an_answer_of_its_own(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    """turnout retries a stream that broke before its first token; the retry replays the
    answer the fault cut instead of recording a second one."""
    path = tmp_path / "c.json"
    plan = FaultPlan([faults.broken_stream(at=1, after_chunks=0)])
    live = stream(up, Cassette.load(path, Mode.ONCE), plan)
    assert live[-1] == b"data: [DONE]\n\n" and [i.attempt for i in plan.injected] == [1]
    entries = orjson.loads(path.read_bytes())["entries"]
    assert [(e["repeat"], "error" in e["response"]) for e in entries] == [(0, False)]
    assert len(up.requests) == 1
    up.stop()
    assert stream(up, Cassette.load(path, Mode.NONE), None) == live


def test_a_non_streamed_answer_cut_by_a_fault_records_one_real_answer(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    gw = InProcessGateway(
        upstream_config(up.base_url),
        cassette=Cassette.load(path, Mode.ONCE),
        faults=FaultPlan([faults.broken_stream(at=1)]),
    ).start()
    with httpx.Client(timeout=30) as client:
        reply = client.post(gw.url + "/v1/chat/completions", json=BODY)
    gw.stop()
    assert reply.status_code == 200 and reply.headers["x-turnout-attempts"] == "2"
    entries = orjson.loads(path.read_bytes())["entries"]
    contents = [e["response"]["completion"]["choices"][0]["message"]["content"] for e in entries]
    assert contents == [ANSWER] and len(up.requests) == 1
