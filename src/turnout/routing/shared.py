"""Routing state shared by gateway replicas through Redis (`state: {url: redis://…}`).

Three things are shared:
- **Concurrency leases.** A deployment's `max_concurrency` holds across replicas: an attempt
  holds a lease in a sorted set per deployment, taken by a Lua script that drops expired
  leases and adds one only below the cap, atomically, on Redis's own clock. Leases expire
  after `lease_ttl_s` unless renewed, so a crashed replica's slots come back by themselves.
- **In-flight work.** Every `sync_s` each replica publishes its own flights per instance (as
  `balance.own_work` gives them, with a short TTL) and reads the others', which the balancer
  counts like its own (`InstanceState.foreign`).
- **Answer lengths.** Each finished answer's length and family go into a capped Redis stream
  that every replica reads, so all length predictors learn from all traffic (and a new replica
  starts from the recent history). Instance speeds are still learned by each replica alone.

When Redis fails, the gateway keeps serving alone: leases are granted by the local gate only,
other replicas' work is forgotten, `turnout_shared_state_up` drops to 0, a warning is logged
once, and Redis is tried again a second later. Nothing waits on Redis longer than its socket
timeout, and no request fails because of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import random
import socket
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from turnout.config import StateConfig
from turnout.routing.admission import Gate, Shed
from turnout.routing.balance import own_work
from turnout.routing.length import LengthFeatures

if TYPE_CHECKING:
    from turnout.routing.balancer import Balancer
    from turnout.telemetry.metrics import Metrics

log = logging.getLogger("turnout.shared")

_NOW_MS = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "
# KEYS[1] leases of one deployment; ARGV cap, ttl_ms, lease id → 1 granted, 0 at the cap.
_ACQUIRE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
  return 1
end
return 0
"""
)
# KEYS[1] leases of one deployment; ARGV ttl_ms, lease ids… → pushes their expiry forward.
_RENEW = (
    _NOW_MS
    + """
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[1]))
return 1
"""
)
_RETRY_S = 1.0  # after a failure, Redis is left alone this long


def replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class SharedState:
    def __init__(
        self,
        config: StateConfig,
        metrics: Metrics | None = None,
        *,
        prefix: str = "turnout:",
        replica: str | None = None,
    ) -> None:
        assert config.url is not None
        self.config = config
        self.metrics = metrics
        self.prefix = prefix
        self.replica = replica or replica_id()
        self.up = False
        self._retry_at = 0.0
        self._redis: Any = None
        self._acquire: Any = None
        self._renew: Any = None
        self._ids = itertools.count(1)
        self.held: dict[str, set[str]] = defaultdict(set)  # deployment → lease ids
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.balancer: Balancer | None = None
        self._lengths: list[dict[str, str]] = []  # answers finished here, not yet published
        self._lengths_seen = "0"  # the stream id read up to

    @property
    def ttl_ms(self) -> int:
        return round(self.config.lease_ttl_s * 1000)

    async def start(self, balancer: Balancer | None) -> None:
        import redis.asyncio as aioredis

        self.balancer = balancer
        if balancer is not None:
            balancer.shared = self
        assert self.config.url is not None
        self._redis = aioredis.Redis.from_url(
            self.config.url,
            socket_timeout=0.25,
            socket_connect_timeout=0.25,
            health_check_interval=0,
        )
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        try:
            await self._redis.ping()
            self._ok()
        except Exception as exc:  # the gateway starts alone and keeps trying
            self._down("connect", exc)
        self._loop_task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._redis is not None:
            if self.up:
                with contextlib.suppress(Exception):  # leases expire by themselves
                    await self._release_all()
            await self._redis.aclose()

    # -- health ------------------------------------------------------------------------------

    def _usable(self) -> bool:
        return self.up or time.monotonic() >= self._retry_at

    def _ok(self) -> None:
        if not self.up:
            log.info(
                "shared state at %s: connected; balancing with the other replicas", self._where
            )
        self.up = True
        if self.metrics is not None:
            self.metrics.shared_state_up.set(1)

    def _down(self, operation: str, exc: BaseException) -> None:
        if self.up or self._retry_at == 0.0:
            log.warning(
                "shared state at %s failed (%s: %s); this gateway works alone until it is back",
                self._where,
                operation,
                exc,
            )
        self.up = False
        self._retry_at = time.monotonic() + _RETRY_S
        if self.balancer is not None:
            for inst in self.balancer.tracker.instances.values():
                inst.foreign = ()
        if self.metrics is not None:
            self.metrics.shared_state_up.set(0)
            self.metrics.shared_state_errors.labels(operation).inc()

    @property
    def _where(self) -> str:
        url = self.config.url or ""
        return url.split("@")[-1]  # never a password in the log

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- leases --------------------------------------------------------------------------------

    async def try_lease(self, deployment: str, cap: int) -> str | None:
        """A lease id; "" when Redis is away (the local gate alone decides); None at the cap."""
        if not self._usable():
            return ""
        lease = f"{self.replica}:{next(self._ids)}"
        try:
            granted = await self._acquire(
                keys=[self._key("leases", deployment)], args=[cap, self.ttl_ms, lease]
            )
        except Exception as exc:
            self._down("lease", exc)
            return ""
        self._ok()
        if not granted:
            return None
        self.held[deployment].add(lease)
        return lease

    def release(self, deployment: str, lease: str) -> None:
        if not lease:
            return
        self.held[deployment].discard(lease)
        if self._usable():
            self._spawn(self._zrem(deployment, lease))

    async def _zrem(self, deployment: str, lease: str) -> None:
        try:
            await self._redis.zrem(self._key("leases", deployment), lease)
        except Exception as exc:  # it expires by itself
            self._down("release", exc)

    async def _release_all(self) -> None:
        for deployment, leases in self.held.items():
            if leases:
                await self._redis.zrem(self._key("leases", deployment), *leases)
        self.held.clear()

    async def _renew_all(self) -> None:
        for deployment, leases in list(self.held.items()):
            if leases:
                await self._renew(
                    keys=[self._key("leases", deployment)], args=[self.ttl_ms, *leases]
                )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- in-flight work ------------------------------------------------------------------------

    async def _loop(self) -> None:
        renew_every = self.config.lease_ttl_s / 3
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.config.sync_s)
            if not self._usable():
                continue
            try:
                if time.monotonic() - renewed >= renew_every:
                    await self._renew_all()
                    renewed = time.monotonic()
                if self.balancer is not None:
                    await self.sync(self.balancer)
                else:
                    await self._redis.ping()
                self._ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._down("sync", exc)

    def answered(self, features: LengthFeatures, tokens: int) -> None:
        """An answer finished here: published at the next sync (dropped if Redis is away)."""
        if self.up and len(self._lengths) < 10_000:
            self._lengths.append(
                {
                    "r": self.replica,
                    "route": features.route,
                    "sys": features.system_hash or "",
                    "max": str(features.max_tokens or ""),
                    "fmt": features.response_format,
                    "n": str(tokens),
                }
            )

    async def _share_lengths(self, balancer: Balancer) -> None:
        key = self._key("lengths")
        pending, self._lengths = self._lengths, []
        if pending:
            async with self._redis.pipeline(transaction=False) as pipe:
                for fields in pending:
                    pipe.xadd(key, fields, maxlen=10_000, approximate=True)
                await pipe.execute()
        entries = await self._redis.xrange(key, f"({self._lengths_seen}", "+", count=2000)
        for entry_id, raw in entries:
            self._lengths_seen = entry_id.decode()
            f = {k.decode(): v.decode() for k, v in raw.items()}
            if f.get("r") == self.replica:
                continue
            features = LengthFeatures(
                f["route"], f["sys"] or None, int(f["max"]) if f["max"] else None, f["fmt"]
            )
            balancer.predictor.observe(features, int(f["n"]))

    async def sync(self, balancer: Balancer) -> None:
        """Publish this replica's flights per instance; fold in the other replicas'."""
        await self._share_lengths(balancer)
        tracker = balancer.tracker
        now = tracker.clock()
        mine = {name: own_work(inst, now) for name, inst in tracker.instances.items()}
        ttl = max(1000, round(4 * self.config.sync_s * 1000))
        members = self._key("replicas")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key("flights", self.replica), json.dumps(mine), px=ttl)
            pipe.sadd(members, self.replica)
            pipe.smembers(members)
            _, _, replicas = await pipe.execute()
        others = sorted(r.decode() for r in replicas if r.decode() != self.replica)
        reports = (
            await self._redis.mget([self._key("flights", r) for r in others]) if others else []
        )
        gone = [r for r, v in zip(others, reports, strict=True) if v is None]
        if gone:
            await self._redis.srem(members, *gone)
        foreign: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        for raw in reports:
            if raw is None:
                continue
            for name, work in json.loads(raw).items():
                foreign[name].extend(tuple(w) for w in work)
        at = tracker.clock()
        for name, inst in tracker.instances.items():
            inst.foreign = tuple(foreign.get(name, ()))
            inst.foreign_at = at


class SharedGate(Gate):
    """A deployment's admission gate whose cap also holds across replicas (Redis leases).

    The local gate keeps the order among this replica's waiters (priority, fair shares); a
    request it lets in then takes a shared lease, waiting while every slot is leased elsewhere.
    """

    def __init__(self, capacity: int, max_queue: int, name: str, shared: SharedState) -> None:
        super().__init__(capacity, max_queue)
        self.name = name
        self.shared = shared
        self._leases: list[str] = []

    async def enter(
        self,
        priority: int,
        tenant: str,
        tokens: float,
        weight: float,
        timeout_s: float | None,
        *,
        queue_limit: bool = True,
    ) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await super().enter(priority, tenant, tokens, weight, timeout_s, queue_limit=queue_limit)
        try:
            delay = 0.005
            while (lease := await self.shared.try_lease(self.name, self.capacity)) is None:
                if queue_limit and self.max_queue == 0:
                    raise Shed("the deployment is at its cap across gateway replicas", 1.0)
                left = math.inf if timeout_s is None else started + timeout_s - loop.time()
                if left <= 0:
                    raise Shed("its deadline passed while it waited", 1.0)
                await asyncio.sleep(min(left, delay * random.uniform(0.5, 1.5)))
                delay = min(delay * 1.5, 0.05)
        except BaseException:
            super().leave()
            raise
        self._leases.append(lease)

    def leave(self) -> None:
        if self._leases:  # leases are interchangeable: any one of ours goes back
            self.shared.release(self.name, self._leases.pop())
        super().leave()
