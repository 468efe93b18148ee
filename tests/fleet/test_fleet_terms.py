"""A term of leadership is registered in the record before its holder decides: the record then
refuses what a leader of an earlier term records late (it stalled past its lease), a record that
knows a later term than Redis does (Redis lost its data) gets a leader numbered above it, and a
holder that cannot register its term does not decide. On both stores, with a real Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from redis_server import RedisServer

from turnout.fleet.leader import Elected, FleetMetrics
from turnout.migrate.events import EventLog
from turnout.store.terms import open_term_log


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


def promote(log: EventLog, decision: str, term: int) -> bool:
    return log.append(
        "assistant", "canary", "cand", "promoted", stage=1, decision=decision, term=term
    )


def test_a_stalled_leaders_late_decision_is_refused_once_its_successor_registered(
    redis: RedisServer, record_url: str
) -> None:
    async def go() -> None:
        first = Elected(redis.url, 1.0, replica="first", record=record_url)
        second = Elected(redis.url, 1.0, replica="second", record=record_url)
        await first.step()  # it leads, then stalls: no loop renews its lease
        assert first.leader
        term = first.epoch
        await second.start()
        assert not second.leader

        async def second_leads() -> bool:
            return second.leader

        await eventually(second_leads)
        assert second.epoch > term
        log = EventLog(record_url)
        await asyncio.to_thread(log.open)
        try:
            # The first leader wakes with the decision it took under its term, and records it.
            assert not await asyncio.to_thread(promote, log, "late", term)
            assert await asyncio.to_thread(promote, log, "current", second.epoch)
        finally:
            log.close()
            await first.close()
            await second.close()

    asyncio.run(go())


def test_a_record_that_knows_a_later_term_than_redis_gets_a_leader_numbered_above_it(
    redis: RedisServer, record_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    terms = open_term_log(record_url)
    try:
        assert terms.register(41, "a replica of the fleet before Redis lost its data") == 41
    finally:
        terms.close()

    async def go() -> None:
        elected = Elected(redis.url, 5.0, replica="after", record=record_url)
        await elected.start()
        try:
            assert elected.leader
            assert elected.epoch == 42
            assert await elected.publish("canary", "stage 1", 1)  # Redis's fence agrees
            log = EventLog(record_url)
            await asyncio.to_thread(log.open)
            try:
                assert await asyncio.to_thread(promote, log, "d", elected.epoch)
            finally:
                log.close()
        finally:
            await elected.close()

    with caplog.at_level(logging.WARNING, "turnout.fleet"):
        asyncio.run(go())
    assert "the record knows term 41, later than Redis's 1" in caplog.text


def test_a_holder_that_cannot_register_its_term_does_not_decide(
    redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "not-a-folder").write_text("")
    unreachable = f"sqlite:///{tmp_path / 'not-a-folder' / 'record.db'}"

    async def go() -> None:
        registry = CollectorRegistry()
        elected = Elected(redis.url, 1.0, FleetMetrics(registry), record=unreachable)
        await elected.start()
        try:
            for _ in range(10):  # renewals go on; leading never begins
                await asyncio.sleep(0.1)
                assert elected.lease.held and not elected.leader and elected.epoch == 0
            assert not await elected.publish("canary", "stage 1", 1)
            assert registry.get_sample_value("turnout_fleet_leader") in (None, 0.0)
        finally:
            await elected.close()

    with caplog.at_level(logging.WARNING, "turnout.fleet"):
        asyncio.run(go())
    warnings = [r for r in caplog.records if "cannot register its term" in r.getMessage()]
    assert len(warnings) == 1  # said once, not at every renewal
