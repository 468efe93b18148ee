"""The leader lease against a real `redis-server`: who holds it, for how long, and what a holder
that lost it can no longer write."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis_server import RedisServer

from turnout.config import ConfigError, parse_config
from turnout.fleet.leader import PREFIX, Elected, FleetMetrics, Solo
from turnout.fleet.lease import FENCED, MOVED_ON, WRITTEN, Lease


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


def client(server: RedisServer) -> Any:
    return aioredis.Redis.from_url(server.url)


def test_one_replica_acquires_the_lease_and_the_next_epoch_is_higher(redis: RedisServer) -> None:
    async def go() -> None:
        r = client(redis)
        a, b = Lease(r, PREFIX, 5.0), Lease(r, PREFIX, 5.0)
        first = await a.acquire()
        assert first >= 1 and a.held
        assert await b.acquire() == 0 and not b.held  # held by a
        await a.release()
        assert not a.held
        second = await b.acquire()
        assert second > first and b.held
        await r.aclose()

    run(go())


def test_renewal_keeps_the_lease_past_its_ttl(redis: RedisServer) -> None:
    async def go() -> None:
        r = client(redis)
        a, b = Lease(r, PREFIX, 0.6), Lease(r, PREFIX, 0.6)
        await a.acquire()
        for _ in range(8):  # 8 × 0.15 s: twice the TTL
            await asyncio.sleep(0.15)
            assert await a.renew()
            assert await b.acquire() == 0
        assert a.held
        await r.aclose()

    run(go())


def test_a_lease_left_to_expire_is_taken_by_another_and_its_holder_cannot_renew(
    redis: RedisServer,
) -> None:
    async def go() -> None:
        r = client(redis)
        a, b = Lease(r, PREFIX, 0.5), Lease(r, PREFIX, 0.5)
        old = await a.acquire()

        async def stolen() -> bool:
            return await b.acquire() > 0

        await eventually(stolen)
        assert b.epoch > old
        assert not await a.renew()  # its term is over, at once
        assert not a.held
        await r.aclose()

    run(go())


def test_fencing_refuses_a_write_from_a_stale_epoch(redis: RedisServer) -> None:
    async def go() -> None:
        r = client(redis)
        a, b = Lease(r, PREFIX, 0.5), Lease(r, PREFIX, 0.5)
        await a.acquire()
        assert await a.fenced_set(PREFIX + "x", "from a", 1) == WRITTEN
        stale = a.epoch

        async def stolen() -> bool:
            return await b.acquire() > 0

        await eventually(stolen)
        # The deposed leader's late write is refused, even if it still believes it leads.
        assert await a.fenced_set(PREFIX + "x", "late from a", 2, epoch=stale) == FENCED
        assert await b.fenced_set(PREFIX + "x", "from b", 1) == MOVED_ON  # a's write is version 1
        assert await b.fenced_set(PREFIX + "x", "from b", 2) == WRITTEN
        assert await r.hget(PREFIX + "x", "value") == b"from b"
        # The same token taking the lease again starts a new term: the old epoch stays refused.
        await b.release()
        await a.acquire()
        assert await a.fenced_set(PREFIX + "x", "again", 3, epoch=stale) == FENCED
        assert await a.fenced_set(PREFIX + "x", "again", 3) == WRITTEN
        await r.aclose()

    run(go())


def test_exactly_one_of_three_contenders_leads(redis: RedisServer) -> None:
    async def go() -> None:
        contenders = [Elected(redis.url, 1.0, replica=f"r{i}") for i in range(3)]
        for c in contenders:
            await c.start()
        for _ in range(10):
            await asyncio.sleep(0.1)
            assert sum(c.leader for c in contenders) == 1
        leader = next(c for c in contenders if c.leader)
        await leader.close()  # hands over at once: released, not left to expire
        rest = [c for c in contenders if c is not leader]

        async def one_again() -> bool:
            return sum(c.leader for c in rest) == 1

        await eventually(one_again)
        for c in rest:
            await c.close()

    run(go())


def test_a_leader_that_loses_redis_stops_leading(redis: RedisServer, tmp_path: Path) -> None:
    async def go() -> None:
        registry = CollectorRegistry()
        elected = Elected(redis.url, 5.0, FleetMetrics(registry))
        await elected.start()
        assert elected.leader
        assert registry.get_sample_value("turnout_fleet_leader") == 1
        assert await elected.publish("canary", "stage 1", 1)
        redis.stop()

        async def deposed() -> bool:
            await elected.step()
            return not elected.leader

        await eventually(deposed)  # at its next renewal, long before the 5 s lease could end
        assert not await elected.publish("canary", "stage 2", 2)
        assert registry.get_sample_value("turnout_fleet_leader") == 0
        assert registry.get_sample_value("turnout_fleet_leader_changes_total", {"change": "lost"})
        await elected.close()

    run(go())


def test_a_lone_gateway_leads_itself() -> None:
    async def go() -> None:
        solo = Solo()
        assert solo.leader
        assert await solo.publish("canary", "one", 1)
        assert not await solo.publish("canary", "stale", 1)
        assert await solo.read("canary") == (1, "one")

    run(go())


def test_the_lease_ttl_is_configured_and_checked_by_its_key() -> None:
    assert parse_config("").state.leader_ttl_s == 5.0
    assert parse_config("state: {leader_ttl_s: 2}").state.leader_ttl_s == 2.0
    with pytest.raises(ConfigError) as info:
        parse_config("state: {leader_ttl_s: 0.1}", "bad.yaml")
    assert info.value.path == "state.leader_ttl_s"
    with pytest.raises(ConfigError) as info:
        parse_config("state: {leader_ttl_s: soon}", "bad.yaml")
    assert info.value.path == "state.leader_ttl_s"
