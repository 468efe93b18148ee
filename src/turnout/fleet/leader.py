"""Which replica decides for the fleet: an elected leader (with `state.url`), or the gateway
itself (without one — a lone gateway is its own leader, as it always was).

Decisions that must be taken once (canary stages, alarms, retention) ask `leader` right before
they act; the answer turns False the moment a renewal fails or the lease's local validity runs
out, which is before Redis could hand the lease to anyone else. What a leader publishes for the
others to follow goes through `publish`, fenced by its term's epoch. A new term is registered in
the record before the replica leads (`turnout.store.terms`): what it records is fenced there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from turnout.config import StateConfig
from turnout.fleet.lease import WRITTEN, Lease, read_versioned
from turnout.fleet.loop import Loop
from turnout.store.errors import StoreError
from turnout.store.terms import TermLog, open_term_log

log = logging.getLogger("turnout.fleet")

PREFIX = "turnout:fleet:"


class FleetMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.leader = Gauge(
            "turnout_fleet_leader", "1 while this replica leads the fleet", registry=registry
        )
        self.epoch = Gauge(
            "turnout_fleet_epoch",
            "The term of leadership this replica last held",
            registry=registry,
        )
        self.changes = Counter(
            "turnout_fleet_leader_changes",
            "Leadership gained or lost by this replica",
            ["change"],
            registry=registry,
        )


class Leadership(Protocol):
    """What deciding code sees of the election."""

    @property
    def leader(self) -> bool: ...

    @property
    def epoch(self) -> int: ...

    @property
    def redis(self) -> Any: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, key: str, value: str, version: int) -> bool: ...

    async def read(self, key: str) -> tuple[int, str | None]: ...


class Solo:
    """A gateway without shared state decides for itself; what it publishes stays in memory."""

    def __init__(self, metrics: FleetMetrics | None = None) -> None:
        self._board: dict[str, tuple[int, str]] = {}
        if metrics is not None:
            metrics.leader.set(1)
            metrics.epoch.set(1)

    leader = True
    epoch = 1
    redis = None

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def publish(self, key: str, value: str, version: int) -> bool:
        if self._board.get(key, (0, ""))[0] != version - 1:
            return False
        self._board[key] = (version, value)
        return True

    async def read(self, key: str) -> tuple[int, str | None]:
        return self._board.get(key, (0, None))


class Elected:
    """One replica of a fleet contending for the leader lease in Redis."""

    def __init__(
        self,
        url: str,
        ttl_s: float,
        metrics: FleetMetrics | None = None,
        *,
        prefix: str = PREFIX,
        replica: str | None = None,
        record: str | None = None,
    ) -> None:
        """`record`: the store a term is registered in before its holder leads."""
        import redis.asyncio as aioredis

        self.url = url
        self.ttl_s = ttl_s
        self.metrics = metrics
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}"
        # Short timeouts: a leader that cannot reach Redis must know it long before its lease ends.
        timeout = min(1.0, ttl_s / 10)
        self.redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=0
        )
        self.lease = Lease(self.redis, prefix, ttl_s)
        self.prefix = prefix
        self.renew_s = ttl_s / 4
        self.poll_s = min(0.5, ttl_s / 4)
        self.record = record
        self._terms: TermLog | None = None
        self._registered = 0  # the term the record accepted
        self._unregistered = False  # the record could not be reached to register one
        self._leading = False
        self._last_epoch = 0
        self._loop = Loop(self.step, "fleet-leadership")

    @property
    def leader(self) -> bool:
        return self.lease.held and self._registered == self.lease.epoch

    @property
    def epoch(self) -> int:
        """The current term's epoch while leading; 0 otherwise."""
        return self.lease.epoch if self.leader else 0

    async def start(self) -> None:
        await self.step()  # the first replica up leads before it serves
        self._loop.start()

    async def close(self) -> None:
        await self._loop.stop()
        leading = self._leading
        if self.lease.epoch:
            with contextlib.suppress(Exception):  # it expires by itself otherwise
                await self.lease.release()
        if leading:
            self._lost("the gateway is stopping")
        await self.redis.aclose()
        if self._terms is not None:
            await asyncio.to_thread(self._terms.close)
            self._terms = None

    async def step(self) -> float:
        """Renew or contend once; how long to wait before the next step."""
        try:
            if self.lease.held:
                if await self.lease.renew():
                    if not self._leading:  # the record could not register the term yet
                        await self._register()
                    return self.renew_s
                if self._leading:
                    self._lost("another replica holds the lease")
            elif self._leading:
                self._lost("the lease could not be renewed in time")
            if await self.lease.acquire():
                await self._register()
                return self.renew_s
            remaining = await self.lease.remaining_ms() / 1000
            # Wake just after the holder's lease would run out, and at least every poll_s.
            return min(self.poll_s, max(0.005, remaining + 0.005))
        except Exception as exc:
            self.lease.drop()
            if self._leading:
                self._lost(f"Redis failed: {type(exc).__name__}: {exc}")
            return self.poll_s

    async def _register(self) -> None:
        """Lead only once the record knows this term: from then on it refuses what an earlier
        term's leader still tries to record."""
        if self.record is not None:
            try:
                newest = await self._record_term()
            except StoreError as exc:
                if not self._unregistered:
                    log.warning(
                        "fleet: %s holds the lease but cannot register its term in the record "
                        "(%s); it does not decide until it can",
                        self.replica,
                        exc,
                    )
                self._unregistered = True
                return
            if newest != self.lease.epoch:
                return
        self._unregistered = False
        self._registered = self.lease.epoch
        self._gained()

    async def _record_term(self) -> int:
        """Register the held term; the newest term the record knows after."""
        assert self.record is not None
        if self._terms is None:
            self._terms = await asyncio.to_thread(open_term_log, self.record)
        terms = self._terms
        newest = await asyncio.to_thread(terms.register, self.lease.epoch, self.replica)
        if newest > self.lease.epoch:  # Redis lost its epoch counter; the record did not
            log.warning(
                "fleet: the record knows term %d, later than Redis's %d; taking a term above it",
                newest,
                self.lease.epoch,
            )
            if await self.lease.advance(newest):
                newest = await asyncio.to_thread(terms.register, self.lease.epoch, self.replica)
        return newest

    def _gained(self) -> None:
        self._leading = True
        self._last_epoch = self.lease.epoch
        log.info(
            "fleet: %s now leads the fleet (epoch %d, lease %gs)",
            self.replica,
            self.lease.epoch,
            self.ttl_s,
        )
        if self.metrics is not None:
            self.metrics.leader.set(1)
            self.metrics.epoch.set(self.lease.epoch)
            self.metrics.changes.labels("gained").inc()

    def _lost(self, why: str) -> None:
        self._leading = False
        self.lease.drop()
        log.warning(
            "fleet: %s no longer leads the fleet (epoch %d): %s; it stops deciding",
            self.replica,
            self._last_epoch,
            why,
        )
        if self.metrics is not None:
            self.metrics.leader.set(0)
            self.metrics.changes.labels("lost").inc()

    async def publish(self, key: str, value: str, version: int) -> bool:
        """Fenced: written only while this replica leads, over version `version` - 1."""
        if not self.leader:
            return False
        try:
            return await self.lease.fenced_set(self.prefix + key, value, version) == WRITTEN
        except Exception as exc:
            log.warning("fleet: a decision could not be published (%s); it is not taken", exc)
            return False

    async def read(self, key: str) -> tuple[int, str | None]:
        return await read_versioned(self.redis, self.prefix + key)


def leadership_for(
    config: StateConfig, registry: CollectorRegistry, record: str | None = None
) -> Leadership:
    metrics = FleetMetrics(registry)
    if config.url is None:
        return Solo(metrics)
    return Elected(config.url, config.leader_ttl_s, metrics, record=record)
