"""Key limits shared by replicas through a real `redis-server`: exact together, alone without it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry
from redis_server import RedisServer

from turnout.auth.limits import KeyLimits, Verdict
from turnout.auth.shared_limits import SharedLimits

DAY_S = 86400.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis")
    yield srv
    srv.stop()


@asynccontextmanager
async def replicas(url: str, n: int, **options: Any) -> AsyncIterator[list[SharedLimits]]:
    """n replicas, each with its own connection to Redis and its own metrics."""
    options.setdefault("heartbeat_s", 0.1)
    started = [SharedLimits(url, CollectorRegistry(), **options) for _ in range(n)]
    try:
        for r in started:
            await r.start()
        await until(lambda: all(r.replicas >= n for r in started))
        yield started
    finally:
        for r in started:
            await r.close()


async def until(condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
    for _ in range(round(deadline_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


async def burst(
    reps: list[SharedLimits], key: KeyLimits, total: int, tokens: int = 0
) -> list[Verdict]:
    """`total` admissions at once, spread evenly over the replicas."""
    calls: list[Awaitable[Verdict]] = [reps[i % len(reps)].admit(key, tokens) for i in range(total)]
    return await asyncio.gather(*calls)


def up(replica: SharedLimits) -> float | None:
    assert replica.registry is not None
    return replica.registry.get_sample_value("turnout_auth_shared_up")


def limits(**kw: Any) -> KeyLimits:
    fields: dict[str, Any] = {"rpm": None, "tpm": None, "budget_usd": None,
                              "budget_period_s": DAY_S} | kw  # fmt: skip
    return KeyLimits("key-1", **fields)


@pytest.mark.parametrize("n", [2, 4])
def test_replicas_together_admit_exactly_the_rpm(server: RedisServer, n: int) -> None:
    async def scenario() -> list[Verdict]:
        async with replicas(server.url, n) as reps:
            return await burst(reps, limits(rpm=20), 40)

    verdicts = asyncio.run(scenario())
    assert sum(v.ok for v in verdicts) == 20
    refused = [v for v in verdicts if not v.ok]
    assert {v.reason for v in refused} == {"rpm"}
    assert all(0 < (v.retry_after_s or 0) <= 60 for v in refused)
    assert all(v.headers["x-ratelimit-remaining-requests"] == "0" for v in refused)


def test_replicas_together_admit_exactly_the_tpm(server: RedisServer) -> None:
    async def scenario() -> list[Verdict]:
        async with replicas(server.url, 2) as reps:
            return await burst(reps, limits(tpm=1000), 40, tokens=100)

    verdicts = asyncio.run(scenario())
    assert sum(v.ok for v in verdicts) == 10
    assert {v.reason for v in verdicts if not v.ok} == {"tpm"}


def test_settle_corrects_tokens_for_every_replica(server: RedisServer) -> None:
    key = limits(tpm=1000)

    async def scenario() -> None:
        async with replicas(server.url, 2) as (a, b):
            assert (await a.admit(key, 800)).ok
            assert (await b.admit(key, 300)).reason == "tpm"
            await a.settle(key, 800, 200, 0.0)  # it used far less than predicted
            assert (await b.admit(key, 300)).ok
            assert (await b.admit(key, 100)).ok
            await b.settle(key, 300, 700, 0.0)  # and this one more: 200 + 700 + 100
            refused = await a.admit(key, 1)
            assert refused.reason == "tpm"
            assert refused.headers["x-ratelimit-remaining-tokens"] == "0"

    asyncio.run(scenario())


def test_the_budget_crossing_request_completes_and_every_replica_refuses_the_next(
    server: RedisServer,
) -> None:
    key, spent = limits(budget_usd=1.0), []

    async def scenario() -> None:
        hook: Callable[[str, float, float], None] = lambda *a: spent.append(a)  # noqa: E731
        async with replicas(server.url, 2, on_spend=hook) as (a, b):
            assert (await a.admit(key, 0)).ok
            await a.settle(key, 0, 0, 0.7)
            assert (await b.admit(key, 0)).ok  # 0.7 of 1.0: under
            await b.settle(key, 0, 0, 0.6)  # crosses, and is settled all the same
            for replica in (a, b):
                refused = await replica.admit(key, 0)
                assert (refused.ok, refused.reason) == (False, "budget")
                assert 0 < (refused.retry_after_s or 0) <= DAY_S
                assert replica.spent_usd("key-1") == pytest.approx(1.3)

    asyncio.run(scenario())
    assert [(k, usd) for k, _, usd in spent] == [("key-1", 0.7), ("key-1", 0.6)]
    assert spent[0][1] == spent[1][1] and spent[0][1] % DAY_S == 0  # the UTC day it belongs to


def test_the_soft_budget_alerts_once_across_replicas(server: RedisServer) -> None:
    key, alerts = limits(budget_usd=1.0, alert_at=0.5), []

    async def scenario() -> None:
        hook: Callable[..., None] = lambda *a: alerts.append(a)  # noqa: E731
        async with replicas(server.url, 2, on_alert=hook) as reps:
            await asyncio.gather(*(r.settle(key, 0, 0, 0.2) for r in reps for _ in range(3)))

    asyncio.run(scenario())
    assert len(alerts) == 1
    assert alerts[0][2] >= 0.5


def test_the_window_slides(server: RedisServer) -> None:
    key = limits(rpm=3)

    async def scenario() -> None:
        async with replicas(server.url, 2, window_s=1.0) as (a, b):
            assert sum(v.ok for v in await burst([a, b], key, 4)) == 3
            refused = await b.admit(key, 0)
            assert refused.reason == "rpm"
            assert refused.retry_after_s is not None and 0 < refused.retry_after_s <= 1.0
            await asyncio.sleep(refused.retry_after_s + 0.05)
            assert (await b.admit(key, 0)).ok

    asyncio.run(scenario())


def test_without_redis_each_replica_takes_its_share_and_returns_when_redis_does(
    server: RedisServer, tmp_path: Path
) -> None:
    key = limits(rpm=20)

    async def scenario() -> None:
        async with replicas(server.url, 2, heartbeat_s=0.1) as (a, b):
            assert all(v.ok for v in await burst([a], key, 4))
            assert up(a) == up(b) == 1
            server.stop()
            # alone, each replica allows 20 / 2 replicas, counting what it admitted before
            assert sum(v.ok for v in await burst([a], key, 20)) == 6
            alone = await burst([b], key, 20)
            assert sum(v.ok for v in alone) == 10
            assert alone[-1].headers["x-ratelimit-limit-requests"] == "10"
            assert up(a) == up(b) == 0
            back = RedisServer(tmp_path / "redis-again", port=server.port)  # empty
            try:
                await until(lambda: a.up and b.up)
                assert up(a) == up(b) == 1
                # both wrote their admissions back: the key's 20 are taken across replicas
                assert [v.reason for v in await burst([a, b], key, 4)] == ["rpm"] * 4
            finally:
                back.stop()

    asyncio.run(scenario())


def test_spend_made_alone_reaches_redis_when_it_answers_again(server: RedisServer) -> None:
    key = limits(budget_usd=1.0)
    control = redis.Redis.from_url(server.url)

    async def scenario() -> None:
        async with replicas(server.url, 2, heartbeat_s=0.1) as (a, b):
            assert (await a.admit(key, 0)).ok
            assert (await b.admit(key, 0)).ok
            await a.settle(key, 0, 0, 0.4)
            control.execute_command("CLIENT", "PAUSE", "3000", "ALL")  # answers late, keeps data
            await a.settle(key, 0, 0, 0.3)  # while it is away
            assert up(a) == 0
            # alone, a may spend half of what was left: 0.4 + 2 × 0.3 crosses 1.0
            assert (await a.admit(key, 0)).reason == "budget"
            await until(lambda: a.up and b.up)
            assert (await b.admit(key, 0)).ok  # 0.7 in all: under
            assert b.spent_usd("key-1") == pytest.approx(0.7)

    try:
        asyncio.run(scenario())
    finally:
        control.close()


def test_admissions_made_alone_are_not_counted_twice_when_redis_kept_its_data(
    server: RedisServer,
) -> None:
    key = limits(rpm=20)
    control = redis.Redis.from_url(server.url)

    async def scenario() -> None:
        async with replicas(server.url, 2, heartbeat_s=0.1) as (a, b):
            assert all(v.ok for v in await burst([a], key, 5))
            control.execute_command("CLIENT", "PAUSE", "3000", "ALL")
            assert all(v.ok for v in await burst([a], key, 3))  # alone: 8 of its 10
            assert up(a) == 0
            await until(lambda: a.up and b.up)
            verdict = await b.admit(key, 0)
            assert verdict.headers["x-ratelimit-remaining-requests"] == "11"  # 20 - 8 - 1

    try:
        asyncio.run(scenario())
    finally:
        control.close()


def test_spend_survives_redis_losing_its_data(server: RedisServer, tmp_path: Path) -> None:
    key = limits(budget_usd=0.8)

    async def scenario() -> None:
        async with replicas(server.url, 2) as (a, b):
            assert (await a.admit(key, 0)).ok
            await a.settle(key, 0, 0, 0.8)
            before = a._epoch
            server.stop()
            back = RedisServer(tmp_path / "redis-again", port=server.port)  # empty
            try:  # both replicas see a new Redis, and write back what they knew
                await until(lambda: a.up and b.up and before != a._epoch == b._epoch)
                async with replicas(server.url, 1) as (fresh,):  # knew nothing before
                    assert (await fresh.admit(key, 0)).reason == "budget"
            finally:
                back.stop()

    asyncio.run(scenario())


def test_a_keys_counters_expire_once_it_is_idle(server: RedisServer) -> None:
    key = limits(rpm=100, tpm=10_000, budget_usd=5.0)
    control = redis.Redis.from_url(server.url)
    log, totals = "turnout:limits:{key-1}:log", "turnout:limits:{key-1}:totals"

    def expiring(*names: str) -> bool:
        return all(0 < control.pttl(name) <= 1000 for name in names)  # two windows at most

    async def scenario() -> None:
        async with replicas(server.url, 1, window_s=0.5) as (a,):
            assert (await a.admit(key, 10)).ok
            assert expiring(log, totals)
            await asyncio.sleep(0.6)  # the entry leaves the window: the next trim empties the log
            assert (await a.admit(key, 20)).ok
            assert expiring(log, totals)
            await a.settle(key, 20, 30, 0.1)  # renames the log's only entry
            assert expiring(log, totals)
            await a.settle(key, 10, 30, 0.2)  # its admission left: a tokens-only entry
            assert expiring(log, totals)
            (spend,) = control.keys("turnout:limits:{key-1}:spend:*")
            assert control.pttl(spend) > 0
            await until(lambda: control.exists(log, totals) == 0)

    try:
        asyncio.run(scenario())
    finally:
        control.close()
