"""Canary mode end to end: a real gateway splits live traffic between two loopback upstreams and
the gate promotes, or rolls back, on what the record shows."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_harness import RunningGateway, start_gateway
from upstream import ScriptedUpstream, Step

from turnout.migrate.events import read_events

Factory = Callable[[str], RunningGateway]
HEALTHY = Step(content='{"answer": 4}', delay_s=0.01)
DEGRADED = {
    "errors": Step(status=500),
    "invalid_output": Step(content="four, I think", delay_s=0.01),
    "much_slower": Step(content='{"answer": 4}', delay_s=0.25),
}


@pytest.fixture
def candidate() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(HEALTHY) as up:
        yield up


def config(old: ScriptedUpstream, cand: ScriptedUpstream, **over: Any) -> str:
    settings = {
        "stages": "[20, 50, 100]",
        "min_requests_per_stage": 20,
        "max_requests_per_stage": 400,
        "min_stage_s": 0,
        "gate": "{success_margin: 0.1, latency_margin: 1.0, cost_margin: 0.5}",
        **over,
    }
    canary = ", ".join(f"{k}: {v}" for k, v in settings.items())
    return f"""
deployments:
  old: {{kind: openai, base_url: "{old.base_url}", model: m, rtt_probe_s: 0,
         price: {{input_per_mtok: 1, output_per_mtok: 2}}}}
  cand: {{kind: openai, base_url: "{cand.base_url}", model: m, rtt_probe_s: 0,
          price: {{input_per_mtok: 1, output_per_mtok: 2}}, cooldown: {{failures: 1000}}}}
models:
  assistant:
    deployments: [old]
    lifecycle: {{backoff: {{base_s: 0, max_s: 0}}}}
    canary: {{deployment: cand, {canary}}}
"""


def ask(gw: RunningGateway, conversation: str | None = None) -> httpx.Response:
    headers = {"x-turnout-conversation-id": conversation} if conversation else {}
    return gw.http.post(
        "/v1/chat/completions",
        json={
            "model": "assistant",
            "messages": [{"role": "user", "content": "What is 2 + 2? Answer in JSON."}],
            "response_format": {"type": "json_object"},
        },
        headers=headers,
    )


def canary(gw: RunningGateway) -> dict[str, Any]:
    status: dict[str, Any] = gw.gateway.engine.canaries.status()["assistant"]  # type: ignore[attr-defined]
    return status


def drive(gw: RunningGateway, until: Callable[[dict[str, Any]], bool], limit: int = 800) -> int:
    """Requests until the canary reaches a state; how many it took."""
    for n in range(1, limit + 1):
        ask(gw)
        if until(canary(gw)):
            return n
    raise AssertionError(f"after {limit} requests the canary is still {canary(gw)}")


def kinds(gw: RunningGateway) -> list[tuple[str, int | None]]:
    gw.gateway.writer.flush()
    return [
        (e.kind, e.stage) for e in read_events(gw.gateway.config.store.url) if e.mode == "canary"
    ]


def metric(gw: RunningGateway, name: str, **labels: str) -> float:
    total = 0.0
    for line in gw.http.get("/metrics").text.splitlines():
        if line.startswith(name + "{"):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_healthy_candidate_is_promoted_through_every_stage(
    upstream: ScriptedUpstream, candidate: ScriptedUpstream, gateway_factory: Factory
) -> None:
    upstream.default = HEALTHY
    gw = gateway_factory(config(upstream, candidate))
    first = ask(gw)
    assert re.search(
        r"canary=(candidate|old); stage=1/3; percent=20; status=running",
        first.headers["x-turnout-route"],
    )
    drive(gw, lambda c: c["status"] == "completed")
    assert kinds(gw) == [("started", 0), ("promoted", 1), ("promoted", 2), ("completed", 2)]
    for event in read_events(gw.gateway.config.store.url)[1:]:
        assert event.detail["gate"]["outcome"] == "pass"
        assert event.detail["candidate"]["n"] >= 20 and event.detail["old"]["n"] >= 5
        checks = {v["check"] for v in event.detail["gate"]["verdicts"]}
        assert checks == {"success", "latency_s", "cost_usd", "intent_hit"}
    # Done: every new conversation goes to the candidate.
    for _ in range(5):
        r = ask(gw)
        assert r.headers["x-turnout-deployment"] == "cand"
        assert "canary=candidate" in r.headers["x-turnout-route"]
        assert "status=completed" in r.headers["x-turnout-route"]
    assert metric(gw, "turnout_canary_transitions_total", kind="promoted") == 2
    assert metric(gw, "turnout_canary_percent", candidate="cand") == 100


@pytest.mark.parametrize("degradation", sorted(DEGRADED))
def test_a_candidate_that_degrades_halfway_is_rolled_back(
    degradation: str,
    upstream: ScriptedUpstream,
    candidate: ScriptedUpstream,
    gateway_factory: Factory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream.default = HEALTHY
    gw = gateway_factory(config(upstream, candidate))
    drive(gw, lambda c: c["stage"] == 2)  # promoted once: now at 50%
    candidate.default = DEGRADED[degradation]
    with caplog.at_level(logging.ERROR, logger="turnout.migrate"):
        drive(gw, lambda c: c["status"] == "rolled_back", limit=300)
    assert kinds(gw) == [("started", 0), ("promoted", 1), ("rolled_back", 1)]
    rollback = read_events(gw.gateway.config.store.url)[-1]
    assert rollback.detail["gate"]["outcome"] == "fail"
    assert rollback.detail["from_percent"] == 50 and rollback.percent == 0
    failed = set(rollback.detail["gate"]["failed"])
    # (a re-asked invalid answer costs twice: cost per request may fail along with success)
    assert ({"latency_s"} if degradation == "much_slower" else {"success"}) <= failed
    assert any("ALARM canary of assistant on cand rolled back" in r.message for r in caplog.records)
    assert metric(gw, "turnout_canary_rolled_back", candidate="cand") == 1
    assert metric(gw, "turnout_canary_transitions_total", kind="rolled_back") == 1
    # Everything goes to the old model now, conversations that started on the candidate too.
    seen = len(candidate.requests)
    for conversation in ("c-1", "c-2", None):
        r = ask(gw, conversation)
        assert r.status_code == 200 and r.headers["x-turnout-deployment"] == "old"
        assert "canary=old" in r.headers["x-turnout-route"]
        assert "status=rolled_back" in r.headers["x-turnout-route"]
    assert len(candidate.requests) == seen


def test_a_conversation_stays_on_its_arm_when_the_stage_changes(
    upstream: ScriptedUpstream, candidate: ScriptedUpstream, gateway_factory: Factory
) -> None:
    upstream.default = HEALTHY
    gw = gateway_factory(config(upstream, candidate))
    conversations = [f"conv-{i}" for i in range(40)]
    first = {c: ask(gw, c).headers["x-turnout-deployment"] for c in conversations}
    assert set(first.values()) == {"old", "cand"}  # 20%: some of each (P(all one arm) < 1e-3)
    assert {c: ask(gw, c).headers["x-turnout-deployment"] for c in conversations} == first
    drive(gw, lambda c: c["stage"] == 2)  # now 50%: a new draw would move some to the candidate
    assert {c: ask(gw, c).headers["x-turnout-deployment"] for c in conversations} == first
    # The conversation id also rides in the body's metadata.
    r = gw.http.post(
        "/v1/chat/completions",
        json={
            "model": "assistant",
            "messages": [{"role": "user", "content": "again"}],
            "metadata": {"conversation_id": "conv-0"},
        },
    )
    assert r.headers["x-turnout-deployment"] == first["conv-0"]


def test_a_restarted_gateway_resumes_the_stage_and_its_evidence(
    upstream: ScriptedUpstream, candidate: ScriptedUpstream, tmp_path: Path
) -> None:
    upstream.default = HEALTHY
    text = config(upstream, candidate, min_requests_per_stage=200)
    store = tmp_path / "canary.db"
    gw = start_gateway(text, store)
    try:
        drive(gw, lambda c: c["stage"] == 2 or c["candidate"]["n"] >= 30)
        before = canary(gw)
    finally:
        gw.stop()
    assert before["stage"] == 1 and before["status"] == "running"

    again = start_gateway(text, store)
    try:
        after = canary(again)
        assert (after["stage"], after["percent"], after["status"]) == (1, 20, "running")
        assert after["candidate"]["n"] == before["candidate"]["n"]
        assert after["old"]["n"] == before["old"]["n"]
        assert "stage=1/3" in ask(again).headers["x-turnout-route"]
    finally:
        again.stop()
    assert [(e.kind, e.stage) for e in read_events(f"sqlite:///{store}")] == [("started", 0)]


def test_a_rolled_back_canary_stays_rolled_back_after_a_restart(
    upstream: ScriptedUpstream, candidate: ScriptedUpstream, tmp_path: Path
) -> None:
    upstream.default = HEALTHY
    candidate.default = DEGRADED["errors"]
    text = config(upstream, candidate)
    store = tmp_path / "canary.db"
    gw = start_gateway(text, store)
    try:
        drive(gw, lambda c: c["status"] == "rolled_back")
    finally:
        gw.stop()
    candidate.default = HEALTHY
    again = start_gateway(text, store)
    try:
        assert canary(again)["status"] == "rolled_back"
        for _ in range(10):
            assert ask(again).headers["x-turnout-deployment"] == "old"
    finally:
        again.stop()

    # An operator starts it over; the next gateway begins at the first stage.
    import argparse

    from turnout.migrate.status import add_reset_parser, add_status_parser

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_reset_parser(sub)
    add_status_parser(sub)
    url = f"sqlite:///{store}"
    args = parser.parse_args(["reset", "assistant", "--candidate", "cand", "--store", url])
    assert args.func(args) == 0
    args = parser.parse_args(["status", "--store", url])
    assert args.func(args) == 0
    third = start_gateway(text, store)
    try:
        state = canary(third)
        assert (state["status"], state["stage"], state["percent"]) == ("running", 1, 20)
    finally:
        third.stop()
    kinds_seen = [e.kind for e in read_events(url) if e.mode == "canary"]
    assert kinds_seen == ["started", "rolled_back", "reset", "started"]


def test_migrate_status_shows_stage_evidence_and_the_rollback_from_the_record(
    upstream: ScriptedUpstream,
    candidate: ScriptedUpstream,
    gateway_factory: Factory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    from turnout.migrate.status import add_status_parser, status

    upstream.default = HEALTHY
    gw = gateway_factory(config(upstream, candidate))
    url = gw.gateway.config.store.url
    drive(gw, lambda c: c["stage"] == 2)
    for _ in range(30):
        ask(gw)
    gw.gateway.writer.flush()
    (now,) = status(url)["assistant"]["canaries"]
    live = canary(gw)
    assert (now["status"], now["stage"], now["percent"]) == ("running", 2, 50)
    assert now["current"]["candidate"]["n"] == live["candidate"]["n"] > 0
    assert now["current"]["old"]["n"] == live["old"]["n"] > 0

    candidate.default = DEGRADED["errors"]
    drive(gw, lambda c: c["status"] == "rolled_back")
    gw.gateway.writer.flush()
    parser = argparse.ArgumentParser()
    add_status_parser(parser.add_subparsers())
    args = parser.parse_args(["status", "--store", url])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "assistant: canary on cand — rolled_back, stage 2 of 3 (0% now" in out
    assert "promoted" in out and "rolled_back" in out and "FAIL at family-wise" in out
    args = parser.parse_args(["status", "--store", url, "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    kinds_seen = [e["kind"] for e in report["assistant"]["canaries"][0]["events"]]
    assert kinds_seen == ["started", "promoted", "rolled_back"]


def test_a_streamed_request_is_placed_labelled_and_counted(
    upstream: ScriptedUpstream, candidate: ScriptedUpstream, gateway_factory: Factory
) -> None:
    upstream.default = HEALTHY
    gw = gateway_factory(config(upstream, candidate, stages="[100]"))
    with gw.http.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "assistant",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    ) as r:
        assert r.read().decode().rstrip().endswith("data: [DONE]")
        route = r.headers["x-turnout-route"]
    assert "canary=candidate; stage=1/1; percent=100; status=running" in route
    (received,) = candidate.requests
    assert received.body["stream"] is True
    assert canary(gw)["candidate"]["n"] == 1
