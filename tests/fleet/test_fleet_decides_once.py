"""Two real `turnout serve` processes sharing one record and one Redis decide as one fleet: one
canary stage sequence, one rollback, one shadow budget — and a leader killed with SIGKILL is
replaced with nothing decided twice or lost."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from fleet_helpers import (
    Replica,
    ask,
    canary_events,
    events,
    route_status,
    serve,
    wait_for,
)
from redis_server import RedisServer
from upstream import ScriptedUpstream, Step

from turnout.fleet.canary import decision_id
from turnout.fleet.leader import PREFIX
from turnout.fleet.lease import WRITTEN, Lease
from turnout.migrate.events import EventLog
from turnout.store.read import open_reader

HEALTHY = Step(content='{"answer": 4}', delay_s=0.01)
TTL_S = 2.0
STAGES = [("started", 0), ("promoted", 1), ("completed", 1)]


@pytest.fixture
def old() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(HEALTHY) as up:
        yield up


@pytest.fixture
def cand() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(HEALTHY) as up:
        yield up


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Iterator[tuple[Path, list[Replica]]]:
    replicas: list[Replica] = []
    yield tmp_path, replicas
    for r in replicas:
        r.stop()


def config(record: str, redis: RedisServer, old: ScriptedUpstream, cand: ScriptedUpstream,
           models: str) -> str:  # fmt: skip
    return f"""
store: {{url: "{record}", flush_interval_s: 0.05}}
state: {{url: "{redis.url}", leader_ttl_s: {TTL_S}}}
deployments:
  old: {{kind: openai, base_url: "{old.base_url}", model: m, rtt_probe_s: 0,
         price: {{input_per_mtok: 1, output_per_mtok: 2}}}}
  cand: {{kind: openai, base_url: "{cand.base_url}", model: m, rtt_probe_s: 0,
          price: {{input_per_mtok: 1, output_per_mtok: 2}}, cooldown: {{failures: 1000}}}}
models:
  assistant:
    deployments: [old]
    lifecycle: {{backoff: {{base_s: 0, max_s: 0}}}}
{models}"""


# Wide margins: the gate passes an equal candidate after a few dozen requests, even on a busy
# machine whose latencies wander.
CANARY = """    canary: {deployment: cand, stages: [50, 100], min_requests_per_stage: 20,
             max_requests_per_stage: 400, min_stage_s: 0,
             gate: {success_margin: 0.2, latency_margin: 3.0, cost_margin: 1.0}}
"""


def start(folder: Path, replicas: list[Replica], text: str, n: int = 2) -> list[Replica]:
    path = folder / "turnout.yaml"
    path.write_text(text)
    for k in range(n):
        replicas.append(serve(path, f"replica-{k}", folder))
    wait_for(lambda: sum(r.leads() for r in replicas) == 1, "one leader")
    return replicas


def leader_of(replicas: list[Replica]) -> Replica:
    (leader,) = [r for r in replicas if r.leads()]
    return leader


def drive(replicas: list[Replica], record: str, until: list[tuple[str, int | None]]) -> None:
    """Traffic through `replicas` until the record's canary events end with `until`."""
    done = threading.Event()

    def load(r: Replica) -> None:
        k = 0
        while not done.is_set():
            k += 1
            assert ask(r, f"{r.name}-{k}").status_code == 200

    threads = [threading.Thread(target=load, args=(r,), daemon=True) for r in replicas]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: canary_events(record)[-len(until) :] == until, f"events {until}")
    finally:
        done.set()
        for t in threads:
            t.join(timeout=30)


def test_the_leader_promotes_on_the_fleets_evidence_and_every_replica_follows(
    redis: RedisServer, record_url: str, old: ScriptedUpstream, cand: ScriptedUpstream,
    fleet_dir: tuple[Path, list[Replica]],
) -> None:  # fmt: skip
    folder, replicas = fleet_dir
    start(folder, replicas, config(record_url, redis, old, cand, CANARY))
    leader = leader_of(replicas)
    follower = next(r for r in replicas if r is not leader)
    # Only the follower serves traffic: the leader sees none of it but in the record.
    drive([follower], record_url, STAGES)
    assert canary_events(record_url) == STAGES  # one sequence for the fleet, each stage once
    for event in events(record_url, "canary")[1:]:
        assert event.detail["gate"]["outcome"] == "pass"
        assert event.detail["candidate"]["n"] >= 20
        assert event.detail["fleet"]["epoch"] >= 1
    assert leader.metric("turnout_canary_transitions_total", kind="promoted") == 1
    assert follower.metric("turnout_canary_transitions_total") == 0  # it decided nothing
    for r in replicas:  # both place by the published stage
        wait_for(lambda r=r: route_status(ask(r)) == "completed", f"{r.name} follows")
        assert ask(r).headers["x-turnout-deployment"] == "cand"


def test_a_rollback_is_decided_once_and_every_replica_goes_back(
    redis: RedisServer, record_url: str, old: ScriptedUpstream, cand: ScriptedUpstream,
    fleet_dir: tuple[Path, list[Replica]],
) -> None:  # fmt: skip
    folder, replicas = fleet_dir
    cand.default = Step(status=500)
    start(folder, replicas, config(record_url, redis, old, cand, CANARY))
    drive(replicas, record_url, [("rolled_back", 0)])
    for r in replicas:
        wait_for(lambda r=r: route_status(ask(r)) == "rolled_back", f"{r.name} follows")
    # More traffic through both: nothing more is decided.
    for _ in range(20):
        for r in replicas:
            assert ask(r).headers["x-turnout-deployment"] == "old"
    assert canary_events(record_url) == [("started", 0), ("rolled_back", 0)]
    assert sum(r.metric("turnout_canary_transitions_total") for r in replicas) == 1


SHADOW = "    shadow: {deployment: cand, fraction: 1.0, budget_usd: 1.2, max_in_flight: 1}\n"


def test_the_shadow_budget_is_spent_once_across_replicas(
    redis: RedisServer, record_url: str, old: ScriptedUpstream, cand: ScriptedUpstream,
    fleet_dir: tuple[Path, list[Replica]],
) -> None:  # fmt: skip
    folder, replicas = fleet_dir
    # Each shadow costs 3 prompt + 2 completion tokens at $100 000/Mtok each: $0.5.
    cand.default = Step(content="two words", prompt_tokens=3, completion_tokens=2)
    text = config(record_url, redis, old, cand, SHADOW).replace(
        "price: {input_per_mtok: 1, output_per_mtok: 2}, cooldown",
        "price: {input_per_mtok: 100000, output_per_mtok: 100000}, cooldown",
    )
    start(folder, replicas, text)

    def stopped_everywhere() -> bool:
        for r in replicas:
            assert ask(r).status_code == 200
        return all(r.metric("turnout_shadow_skipped_total", reason="budget") > 0 for r in replicas)

    wait_for(stopped_everywhere, "every replica stops mirroring")
    for r in replicas:
        r.stop()  # what either spent is recorded
    with open_reader(record_url) as reader:
        spent = reader.shadow_spent("assistant", "cand")
    # $1.2 is crossed by the third shadow ($1.5); one more per replica may have been in flight.
    assert 1.2 <= spent <= 1.5 + 0.5 * len(replicas)
    (stop,) = events(record_url, "shadow")  # both replicas saw it; the record kept one
    assert stop.kind == "budget_spent"


def test_a_shadow_stop_whose_replica_died_before_recording_it_is_recorded_by_another(
    redis: RedisServer, record_url: str, old: ScriptedUpstream, cand: ScriptedUpstream,
    fleet_dir: tuple[Path, list[Replica]],
) -> None:  # fmt: skip
    folder, replicas = fleet_dir
    start(folder, replicas, config(record_url, redis, old, cand, SHADOW))
    # A third replica's last shadows took the fleet's spend over the budget, and it died before
    # it recorded the stop: its spend is in Redis, its event nowhere.
    spent = "turnout:fleet:shadow:assistant:cand:spent_usd"
    asyncio.run(set_key(redis, spent, "1.5"))
    wait_for(lambda: len(events(record_url, "shadow")) >= 1, "the stop recorded")
    for r in replicas:  # both stop mirroring, and both have seen the total by now
        wait_for(lambda r=r: stops_mirroring(r), f"{r.name} stops")
    (stop,) = events(record_url, "shadow")
    assert stop.kind == "budget_spent"
    assert stop.detail == {"spent_usd": 1.5, "budget_usd": 1.2}


async def set_key(redis: RedisServer, key: str, value: str) -> None:
    r = aioredis.Redis.from_url(redis.url)
    await r.set(key, value)
    await r.aclose()


def stops_mirroring(r: Replica) -> bool:
    assert ask(r).status_code == 200
    return r.metric("turnout_shadow_skipped_total", reason="budget") > 0


def test_a_leader_killed_mid_canary_is_replaced_and_no_stage_is_decided_twice_or_lost(
    redis: RedisServer, record_url: str, old: ScriptedUpstream, cand: ScriptedUpstream,
    fleet_dir: tuple[Path, list[Replica]],
) -> None:  # fmt: skip
    folder, replicas = fleet_dir
    start(folder, replicas, config(record_url, redis, old, cand, CANARY), n=3)
    drive(replicas, record_url, [("promoted", 1)])
    first = leader_of(replicas)
    epoch = first.metric("turnout_fleet_epoch")
    first.kill()
    rest = [r for r in replicas if r is not first]
    wait_for(lambda: sum(r.leads() for r in rest) == 1, "a new leader")
    second = leader_of(rest)
    assert second.metric("turnout_fleet_epoch") > epoch
    assert "now leads the fleet" in second.log.read_text()
    drive(rest, record_url, STAGES[-2:])
    assert canary_events(record_url) == STAGES


def publish_and_die(redis: RedisServer) -> dict[str, Any]:
    """A leader publishes a rollback and dies before its event reaches the record."""

    async def go() -> dict[str, Any]:
        r = aioredis.Redis.from_url(redis.url)
        lease = Lease(r, PREFIX, 0.5)
        assert await lease.acquire()
        at = time.time()
        rollback = {
            "kind": "rolled_back", "status": "rolled_back", "stage": 0, "since": at,
            "version": 1, "epoch": lease.epoch, "at": at, "why": "FAIL: success",
            "detail": {"reason": "FAIL: success", "fleet": {"version": 1, "epoch": lease.epoch}},
        }  # fmt: skip
        key = PREFIX + "canary:assistant:cand"
        assert await lease.fenced_set(key, json.dumps(rollback), 1) == WRITTEN
        await r.aclose()
        return rollback

    published: dict[str, Any] = asyncio.run(go())
    return published


def test_a_decision_its_leader_published_but_never_recorded_is_recorded_by_the_successor(
    redis: RedisServer, record_url: str, old: ScriptedUpstream, cand: ScriptedUpstream,
    fleet_dir: tuple[Path, list[Replica]],
) -> None:  # fmt: skip
    rollback = publish_and_die(redis)
    folder, replicas = fleet_dir
    (successor,) = start(folder, replicas, config(record_url, redis, old, cand, CANARY), n=1)
    wait_for(lambda: canary_events(record_url) == [("rolled_back", 0)], "the rollback recorded")
    (event,) = events(record_url, "canary")
    assert event.detail["recorded_by_successor"] is True
    assert event.detail["fleet"]["epoch"] < successor.metric("turnout_fleet_epoch")
    assert route_status(ask(successor)) == "rolled_back"
    for _ in range(10):
        assert ask(successor).headers["x-turnout-deployment"] == "old"
    # The first leader was only stalled: it wakes and records its rollback, late. Refused twice
    # over: its term is older than the successor's, and the record holds that decision already.
    late = EventLog(record_url)
    late.open()
    try:
        decision = decision_id("assistant", "cand", rollback)
        assert not late.append(
            "assistant", "canary", "cand", "rolled_back", stage=0, detail=rollback["detail"],
            decision=decision, term=rollback["epoch"],
        )  # fmt: skip
        assert not late.append(
            "assistant", "canary", "cand", "rolled_back", stage=0, decision=decision
        )
    finally:
        late.close()
    assert canary_events(record_url) == [("rolled_back", 0)]  # once


def test_a_reset_restarts_a_running_fleets_canary_at_its_first_stage(
    redis: RedisServer, record_url: str, old: ScriptedUpstream, cand: ScriptedUpstream,
    fleet_dir: tuple[Path, list[Replica]],
) -> None:  # fmt: skip
    publish_and_die(redis)
    folder, replicas = fleet_dir
    start(folder, replicas, config(record_url, redis, old, cand, CANARY))
    wait_for(lambda: canary_events(record_url) == [("rolled_back", 0)], "the rollback recorded")
    reset = subprocess.run(
        [sys.executable, "-m", "turnout", "migrate", "reset", "assistant", "--candidate", "cand",
         "--store", record_url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    # No restart: the leader starts it over, once, and every replica follows.
    wait_for(lambda: canary_events(record_url)[-1] == ("started", 0), "started over")
    for r in replicas:
        wait_for(lambda r=r: route_status(ask(r)) == "running", f"{r.name} follows")
    assert canary_events(record_url) == [("rolled_back", 0), ("reset", None), ("started", 0)]
