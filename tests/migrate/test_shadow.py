"""Shadow mode end to end: a real gateway mirrors live requests to a candidate upstream on loopback.

Ordering is asserted, never timing: the candidate holds its answer until the test lets it go, so a
client that has its answer by then provably did not wait for the shadow.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_harness import RunningGateway, start_gateway
from upstream import ScriptedUpstream, Step

from turnout.migrate.events import read_events
from turnout.migrate.pairs import shadow_pairs
from turnout.store.query import RecordNotFound

Factory = Callable[[str], RunningGateway]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def candidate() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(Step(content="Candidate answer.")) as up:
        yield up


def config(primary: ScriptedUpstream, cand: ScriptedUpstream, shadow: str) -> str:
    return f"""
deployments:
  old: {{kind: openai, base_url: "{primary.base_url}", model: m, rtt_probe_s: 0,
         price: {{input_per_mtok: 1, output_per_mtok: 2}}}}
  cand: {{kind: openai, base_url: "{cand.base_url}", model: m, rtt_probe_s: 0,
          price: {{input_per_mtok: 100000, output_per_mtok: 100000}}}}
models:
  assistant:
    deployments: [old]
    shadow: {shadow}
"""


def wait_record(gw: RunningGateway, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        try:
            return gw.record(request_id)
        except RecordNotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def metric(gw: RunningGateway, name: str, **labels: str) -> float:
    text = gw.http.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_client_has_its_answer_while_the_shadow_is_still_held(
    upstream: ScriptedUpstream, candidate: ScriptedUpstream, gateway_factory: Factory
) -> None:
    upstream.default = Step(content="Primary answer.")
    release = threading.Event()
    candidate.default = Step(content="Candidate answer.", hold=release)
    gw = gateway_factory(config(upstream, candidate, "{deployment: cand, fraction: 1.0}"))

    r = gw.chat(model="assistant")
    # The candidate has the mirrored request and has not answered it, yet the client has its answer.
    candidate.wait_for_requests(1)
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "Primary answer."
    assert r.headers["x-turnout-deployment"] == "old"
    primary = wait_record(gw, r.headers["x-turnout-request-id"])
    shadow_id = primary["migration"]["shadow"]
    gw.gateway.writer.flush()
    with pytest.raises(RecordNotFound):
        gw.record(shadow_id)  # still running: nothing recorded yet
    assert metric(gw, "turnout_shadow_in_flight", model="assistant") == 1

    release.set()
    shadow = wait_record(gw, shadow_id)
    assert shadow["migration"] == {"shadow_of": primary["id"], "candidate": "cand"}
    assert shadow["outcome"] == "completed" and shadow["deployments"] == ["cand"]
    assert shadow["response_body"]["choices"][0]["message"]["content"] == "Candidate answer."
    assert shadow["ended"] > primary["ended"]
    assert candidate.requests[0].body["messages"] == upstream.requests[0].body["messages"]

    # Paired for the diff, and kept apart from the model's own metrics.
    (pair,) = shadow_pairs(gw.gateway.config.store.url, "assistant")
    assert (pair.primary["id"], pair.shadow["id"], pair.candidate) == (
        primary["id"],
        shadow_id,
        "cand",
    )
    # A replay of the model's recorded traffic leaves the shadows out.
    from turnout.migrate.records import select

    (replayable,) = select(gw.gateway.config.store.url, models=("assistant",))
    assert replayable.id == primary["id"]
    assert metric(gw, "turnout_requests_total", model="assistant") == 1
    assert metric(gw, "turnout_shadow_requests_total", outcome="completed") == 1
    assert metric(gw, "turnout_cost_usd_total", deployment="cand") == 0
    assert metric(gw, "turnout_shadow_cost_usd_total", deployment="cand") == pytest.approx(
        shadow["cost_usd"]
    )


def test_a_streaming_request_is_mirrored_without_streaming(
    upstream: ScriptedUpstream, candidate: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream, candidate, "{deployment: cand, fraction: 1.0}"))
    with gw.http.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "assistant",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hi"}],
        },
    ) as r:
        body = r.read().decode()
        rid = r.headers["x-turnout-request-id"]
    assert body.rstrip().endswith("data: [DONE]")
    pieces = [
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in body.splitlines()
        if line.startswith("data: {") and json.loads(line[6:])["choices"]
    ]
    assert "".join(pieces) == "Hello from upstream."
    (mirrored,) = candidate.wait_for_requests(1)
    assert not mirrored.body.get("stream") and "stream_options" not in mirrored.body
    primary = wait_record(gw, rid)
    shadow = wait_record(gw, primary["migration"]["shadow"])
    assert primary["stream"] is True and shadow["stream"] is False
    assert shadow["outcome"] == "completed"


def test_shadow_tool_calls_are_recorded_and_never_acted_on(
    upstream: ScriptedUpstream, candidate: ScriptedUpstream, gateway_factory: Factory
) -> None:
    upstream.default = Step(content="It is sunny.")
    # The candidate asks for a tool with arguments that break the tool's schema.
    candidate.default = Step(
        content=None,
        tool_calls=[{"function": {"name": "get_weather", "arguments": {"town": "Oslo"}}}],
        finish_reason="tool_calls",
    )
    gw = gateway_factory(config(upstream, candidate, "{deployment: cand, fraction: 1.0}"))
    r = gw.chat(model="assistant", tools=[WEATHER_TOOL])
    assert r.status_code == 200
    message = r.json()["choices"][0]["message"]
    assert message["content"] == "It is sunny." and not message.get("tool_calls")
    primary = wait_record(gw, r.headers["x-turnout-request-id"])
    shadow = wait_record(gw, primary["migration"]["shadow"])
    # One generation, nothing else: no re-ask about the bad arguments, no tool result sent back.
    assert len(candidate.requests) == 1 and len(upstream.requests) == 1
    assert shadow["outcome"] == "invalid_output" and shadow["attempts"] == 1
    assert shadow["response_body"]["choices"][0]["message"]["tool_calls"][0]["function"][
        "name"
    ] == ("get_weather")
    assert not any(m.get("role") == "tool" for m in candidate.requests[0].body["messages"])


def test_at_most_max_in_flight_shadows_run_and_the_rest_are_counted(
    upstream: ScriptedUpstream, candidate: ScriptedUpstream, gateway_factory: Factory
) -> None:
    release = threading.Event()
    candidate.default = Step(hold=release)
    gw = gateway_factory(
        config(upstream, candidate, "{deployment: cand, fraction: 1.0, max_in_flight: 2}")
    )
    replies = [gw.chat(model="assistant") for _ in range(5)]
    assert all(r.status_code == 200 for r in replies)
    candidate.wait_for_requests(2)
    assert len(candidate.requests) == 2
    assert metric(gw, "turnout_shadow_skipped_total", reason="in_flight") == 3
    release.set()
    records = [wait_record(gw, r.headers["x-turnout-request-id"]) for r in replies]
    shadowed = [rec for rec in records if "shadow" in (rec["migration"] or {})]
    assert len(shadowed) == 2
    for rec in shadowed:
        assert wait_record(gw, rec["migration"]["shadow"])["outcome"] == "completed"
    # Slots free again: the next request is mirrored.
    nxt = gw.chat(model="assistant")
    assert "shadow" in wait_record(gw, nxt.headers["x-turnout-request-id"])["migration"]


def test_only_the_configured_fraction_is_mirrored(
    upstream: ScriptedUpstream, candidate: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream, candidate, "{deployment: cand, fraction: 0.25}"))
    replies = [gw.chat(model="assistant") for _ in range(200)]
    records = [wait_record(gw, r.headers["x-turnout-request-id"]) for r in replies]
    mirrored = sum("shadow" in (rec["migration"] or {}) for rec in records)
    # Binomial(200, 0.25): mean 50, sd ~6.1; these bounds are > 4.5 sd away.
    assert 22 <= mirrored <= 78


def test_mirroring_stops_when_the_budget_is_spent_and_stays_stopped_after_a_restart(
    upstream: ScriptedUpstream, candidate: ScriptedUpstream, tmp_path: Path
) -> None:
    # Each shadow costs (prompt 3 + completion 2 tokens) x $0.1/token = $0.5: the third spends $1.
    candidate.default = Step(content="two words", prompt_tokens=3, completion_tokens=2)
    text = config(upstream, candidate, "{deployment: cand, fraction: 1.0, budget_usd: 1.2}")
    store = tmp_path / "budget.db"
    gw = start_gateway(text, store)
    try:
        for _ in range(3):
            r = gw.chat(model="assistant")
            wait_record(
                gw, wait_record(gw, r.headers["x-turnout-request-id"])["migration"]["shadow"]
            )
        for _ in range(2):
            r = gw.chat(model="assistant")
            assert r.status_code == 200
            assert not wait_record(gw, r.headers["x-turnout-request-id"])["migration"]
        assert len(candidate.requests) == 3
        assert metric(gw, "turnout_shadow_skipped_total", reason="budget") == 2
        assert metric(gw, "turnout_shadow_budget_left_usd", deployment="cand") == 0
        url = gw.gateway.config.store.url
    finally:
        gw.stop()
    (event,) = [e for e in read_events(url) if e.mode == "shadow"]
    assert event.kind == "budget_spent" and event.detail["spent_usd"] == pytest.approx(1.5)

    again = start_gateway(text, store)
    try:
        r = again.chat(model="assistant")
        assert r.status_code == 200
        assert not wait_record(again, r.headers["x-turnout-request-id"])["migration"]
        assert len(candidate.requests) == 3
        assert metric(again, "turnout_shadow_skipped_total", reason="budget") == 1
    finally:
        again.stop()
    assert len([e for e in read_events(url) if e.mode == "shadow"]) == 1  # not recorded again

    # A gateway that died between spending the budget and recording the stop: the next start
    # finds the budget spent and no stop in the record, and records it.
    with sqlite3.connect(store) as conn:
        conn.execute("DELETE FROM migration_events WHERE mode = 'shadow'")
    conn.close()
    third = start_gateway(text, store)
    third.stop()
    (event,) = [e for e in read_events(url) if e.mode == "shadow"]
    assert event.kind == "budget_spent" and event.detail["budget_usd"] == 1.2


def test_requests_lists_shadows_apart(
    upstream: ScriptedUpstream,
    candidate: ScriptedUpstream,
    gateway_factory: Factory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from turnout.cli import main

    gw = gateway_factory(config(upstream, candidate, "{deployment: cand, fraction: 1.0}"))
    r = gw.chat(model="assistant")
    primary = wait_record(gw, r.headers["x-turnout-request-id"])
    wait_record(gw, primary["migration"]["shadow"])
    assert main(["requests", "--store", gw.gateway.config.store.url]) == 0
    out = capsys.readouterr().out
    assert f"shadow of {primary['id']}" in out
    assert "shadowed" in out
