"""A breaker opened on one replica rests the deployment on every replica: two real `turnout
serve` processes sharing one Redis; the second never sends its own requests to a deployment the
first found down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fleet_helpers import Replica, ask, serve, wait_for
from redis_server import RedisServer
from upstream import ScriptedUpstream, Step


@pytest.fixture
def bad() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(Step(status=500)) as up:
        yield up


@pytest.fixture
def good() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(Step(content='{"answer": 4}')) as up:
        yield up


@pytest.fixture
def replicas(
    tmp_path: Path, redis: RedisServer, bad: ScriptedUpstream, good: ScriptedUpstream
) -> Iterator[list[Replica]]:
    config = tmp_path / "turnout.yaml"
    config.write_text(f"""
store: {{url: "sqlite:///{tmp_path / "record.db"}", flush_interval_s: 0.05}}
state: {{url: "{redis.url}"}}
deployments:
  bad: {{kind: openai, base_url: "{bad.base_url}", model: m, rtt_probe_s: 0,
         cooldown: {{failures: 2, probe_after_s: 120, seconds: 120}}}}
  good: {{kind: openai, base_url: "{good.base_url}", model: m, rtt_probe_s: 0}}
models:
  assistant:
    deployments: [bad, good]
    lifecycle: {{backoff: {{base_s: 0, max_s: 0}}}}
""")
    started: list[Replica] = []
    try:
        for name in ("first", "second"):
            started.append(serve(config, name, tmp_path))
        yield started
    finally:
        for r in started:
            r.stop()


def history(r: Replica) -> str:
    return httpx.get(r.url + "/ui/deployments", timeout=10).text


def test_a_breaker_opened_on_one_replica_keeps_every_replica_off_the_deployment(
    replicas: list[Replica], bad: ScriptedUpstream
) -> None:
    first, second = replicas
    for _ in range(2):  # two failures in a row open the first replica's breaker
        r = ask(first)
        assert r.status_code == 200 and r.headers["x-turnout-deployment"] == "good"
    assert "2 failures in a row" in history(first)
    sent = len(bad.requests)  # the first replica's, retries included
    # The second replica rests it too, before it has sent it anything of its own.
    wait_for(lambda: "another replica opened it" in history(second), "the second rests it")
    for _ in range(5):
        r = ask(second)
        assert r.status_code == 200
        assert r.headers["x-turnout-deployment"] == "good"
        assert r.headers["x-turnout-attempts"] == "1"
    assert len(bad.requests) == sent  # none from the second replica
