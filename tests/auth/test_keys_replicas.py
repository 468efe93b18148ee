"""A key's limits held by two real gateway processes sharing a real `redis-server`."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gateway_process import start_gateway, stop_gateway
from keys_helpers import PRICE, create_key, keys_cli
from redis_server import RedisServer
from upstream import ScriptedUpstream, free_port

from turnout.auth.limits import KeyLimits
from turnout.auth.shared_limits import SharedLimits
from turnout.store.query import list_requests

HI = [{"role": "user", "content": "hi"}]
ADMIN = "admin-secret-for-tests"


@dataclass
class Fleet:
    urls: list[str]
    store: Path
    redis: RedisServer
    logs: list[Path]
    procs: list[subprocess.Popen[bytes]]

    def post(self, i: int, key: str, **body: object) -> httpx.Response:
        return httpx.post(
            f"{self.urls[i]}/v1/chat/completions",
            json={"model": "chat", "messages": HI, **body},
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )

    def knows(self, key: str) -> bool:
        """Every replica has read the key (no request counted against its limits)."""
        auth = {"authorization": f"Bearer {key}"}
        return all(
            httpx.get(f"{url}/v1/models", headers=auth, timeout=10).status_code == 200
            for url in self.urls
        )

    def metric(self, i: int, name: str) -> str:
        auth = {"authorization": f"Bearer {ADMIN}"}
        text = httpx.get(f"{self.urls[i]}/metrics", headers=auth, timeout=10).text
        return next(line for line in text.splitlines() if line.startswith(name + " "))


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    store = tmp_path / "record.db"
    create_key(store, "--name", "warm-up")  # the record exists before two gateways open it
    redis = RedisServer(tmp_path / "redis")
    procs: list[subprocess.Popen[bytes]] = []
    with ScriptedUpstream() as up:
        config = tmp_path / "turnout.yaml"
        config.write_text(
            f"""
deployments:
  up: {{kind: openai, base_url: "{up.base_url}", model: m, {PRICE}}}
models:
  chat: {{deployments: [up]}}
store: {{url: "sqlite:///{store}", flush_interval_s: 0.05}}
state: {{url: "{redis.url}"}}
auth: {{mode: keys, refresh_s: 0.2}}
"""
        )
        ports = [free_port(), free_port()]
        logs = [tmp_path / f"gateway-{i}.log" for i in range(2)]
        try:
            procs += [
                start_gateway(config, p, log, {"TURNOUT_ADMIN_KEY": ADMIN})
                for p, log in zip(ports, logs, strict=True)
            ]
            yield Fleet([f"http://127.0.0.1:{p}" for p in ports], store, redis, logs, procs)
        finally:
            for proc in procs:
                stop_gateway(proc)
            redis.stop()


def test_two_replicas_together_admit_exactly_the_keys_rpm(fleet: Fleet) -> None:
    key = create_key(fleet.store, "--name", "shared", "--rpm", "20")
    _until(lambda: fleet.knows(key["key"]))

    # Both replicas admit from the one count: three each, one after another ...
    assert [fleet.post(i % 2, key["key"]).status_code for i in range(6)] == [200] * 6

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{fleet.urls[i % 2]}/v1/chat/completions",
                        json={"model": "chat", "messages": HI},
                        headers={"authorization": f"Bearer {key['key']}"},
                    )
                    for i in range(34)
                )
            )

    # ... then a burst split between them gets exactly the rest of the minute's 20.
    answers = asyncio.run(burst())
    statuses = [r.status_code for r in answers]
    assert statuses.count(200) == 14 and statuses.count(429) == 20
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 429} == {
        "rate_limit_exceeded"
    }
    for i in (0, 1):
        assert fleet.metric(i, "turnout_auth_shared_up") == "turnout_auth_shared_up 1.0"
    # every refusal is in the one record the replicas share, with its reason
    ids = {r.headers["x-turnout-request-id"] for r in answers if r.status_code == 429}
    _until(lambda: len(_rejected(fleet, key["id"])) == 20)
    assert {r["id"] for r in _rejected(fleet, key["id"])} == ids


def test_a_revoked_key_is_refused_by_both_replicas(fleet: Fleet) -> None:
    key = create_key(fleet.store, "--name", "doomed")
    _until(lambda: fleet.knows(key["key"]))
    assert [fleet.post(i, key["key"]).status_code for i in (0, 1)] == [200, 200]
    assert keys_cli(fleet.store, "revoke", key["id"])[0] == 0
    # refresh_s is 0.2: both replicas re-read the keys well within a second
    _until(lambda: all(fleet.post(i, key["key"]).status_code == 401 for i in (0, 1)), 3.0)
    assert "revoked" in fleet.post(1, key["key"]).text


def test_the_budget_crossed_on_one_replica_refuses_on_the_other(fleet: Fleet) -> None:
    key = create_key(fleet.store, "--name", "capped", "--budget-usd", "0.001")
    _until(lambda: fleet.knows(key["key"]))
    crossing = fleet.post(0, key["key"])
    assert crossing.status_code == 200
    assert float(crossing.headers["x-turnout-cost-usd"]) > 0.001  # crosses the whole budget
    # Its cost reaches Redis as it ends (after the response): wait until a third party sees it.
    observer = KeyLimits(key["id"], None, None, 0.001, None)

    async def refused_by_redis() -> bool:
        limits = SharedLimits(fleet.redis.url)
        await limits.start()
        try:
            return (await limits.admit(observer, 0)).reason == "budget"
        finally:
            await limits.close()

    _until(lambda: asyncio.run(refused_by_redis()))
    refused = fleet.post(1, key["key"])
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "insufficient_quota"
    _until(lambda: len(_records(fleet, key["id"])) == 2)
    assert [r["outcome"] for r in _records(fleet, key["id"])] == ["rejected", "completed"]


def test_each_replica_enforces_alone_with_its_share_when_redis_goes_away(fleet: Fleet) -> None:
    key = create_key(fleet.store, "--name", "halved", "--rpm", "10")
    _until(lambda: fleet.knows(key["key"]))
    assert fleet.post(0, key["key"]).status_code == 200  # 1 of 10, shared
    replicas = "turnout_auth_shared_replicas"
    _until(lambda: all(fleet.metric(i, replicas) == f"{replicas} 2.0" for i in (0, 1)))
    fleet.redis.stop()
    # alone, each replica takes 10 / 2 replicas, counting what it admitted itself
    statuses = [fleet.post(0, key["key"]).status_code for _ in range(6)]
    assert statuses == [200] * 4 + [429] * 2
    assert fleet.metric(0, "turnout_auth_shared_up") == "turnout_auth_shared_up 0.0"
    log = fleet.logs[0].read_text()
    assert log.count("enforcing alone with limits divided by 2 replicas") == 1


def _records(fleet: Fleet, key_id: str) -> list[dict]:
    return list_requests(f"sqlite:///{fleet.store}", limit=100, key_id=key_id)


def _rejected(fleet: Fleet, key_id: str) -> list[dict]:
    return [r for r in _records(fleet, key_id) if r["outcome"] == "rejected"]


def _until(condition: object, deadline_s: float = 20.0) -> None:
    assert callable(condition)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("the condition never held")
