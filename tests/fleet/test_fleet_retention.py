"""Two gateways sharing one record and one Redis: only the fleet's leader prunes the record."""

from __future__ import annotations

import time
from pathlib import Path

from fleet_helpers import wait_for
from gateway_harness import start_gateway
from redis_server import RedisServer
from upstream import ScriptedUpstream

from turnout.config import Retention
from turnout.lifecycle.run import Run
from turnout.lifecycle.states import State
from turnout.store.writer import RecordWriter

DAY = 86400.0


def old_records(db: Path, n: int) -> None:
    writer = RecordWriter(f"sqlite:///{db}", "full", 3600, 100_000, Retention(max_age_days=0))
    writer.open()
    for k in range(n):
        run = Run(id=f"old-{k}", model="assistant", operation="chat", started=time.time() - 9 * DAY)
        run.transition(State.REJECTED, status=400)
        writer.submit(run)
    writer.close()


def test_only_the_leader_prunes_the_shared_record(
    redis: RedisServer, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    db = tmp_path / "record.db"
    old_records(db, 50)
    config = f"""
store: {{url: "sqlite:///{db}", flush_interval_s: 0.05,
         retention: {{max_age_days: 1, check_s: 0.05}}}}
state: {{url: "{redis.url}", leader_ttl_s: 2}}
deployments:
  a: {{kind: openai, base_url: "{upstream.base_url}", model: m, rtt_probe_s: 0}}
models:
  assistant: {{deployments: [a]}}
"""
    gateways = [start_gateway(config, db) for _ in range(2)]
    try:
        wait_for(lambda: sum(g.gateway.writer.pruned for g in gateways) == 50, "pruned")
        (leader,) = [g for g in gateways if g.gateway.leadership.leader]
        (follower,) = [g for g in gateways if g is not leader]
        assert leader.gateway.writer.pruned == 50
        assert follower.gateway.writer.pruned == 0
        assert not follower.gateway.writer.may_prune()
    finally:
        for g in gateways:
            g.stop()
