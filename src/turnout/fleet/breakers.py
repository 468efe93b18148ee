"""A circuit breaker opened on one replica rests the deployment on every replica.

Without this, each replica learns a deployment is down from its own failures: a fleet of N
sends N times `cooldown.failures` requests to a dead deployment, and N half-open probes every
rest. The replica whose breaker opens writes a key that expires with the rest; every replica
reads the keys every `every_s` and holds its own breaker open for as long as the key has left.
When the rest ends, each replica's breaker goes half-open and probes as it would alone. While
Redis is away each replica's breakers work alone, as on one gateway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from turnout.fleet.leader import PREFIX
from turnout.fleet.loop import Loop, Writes
from turnout.lifecycle.policy import Breaker

log = logging.getLogger("turnout.fleet")

# A key's rest this much past the breaker's own is another replica's, not the echo of its own.
SLACK_S = 0.25


class SharedBreakers:
    def __init__(self, breakers: Mapping[str, Breaker], redis: Any, every_s: float = 0.5) -> None:
        self.breakers = breakers
        self.redis = redis
        self.every_s = every_s
        self._names = tuple(breakers)
        self._writes = Writes(log, "an open breaker")  # else the others learn it themselves
        self._loop = Loop(self._follow, "fleet-breakers")
        self._failing = False
        for name, breaker in breakers.items():
            breaker.on_open = self._opener(name)

    def key(self, deployment: str) -> str:
        return f"{PREFIX}breaker:open:{deployment}"

    def _opener(self, deployment: str) -> Any:
        def opened(rest_s: float, why: str) -> None:
            ms = max(1, round(rest_s * 1000))
            self._writes.send(self.redis.set(self.key(deployment), why, px=ms))

        return opened

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self._writes.cancel()
        for breaker in self.breakers.values():
            breaker.on_open = None

    async def _follow(self) -> float:
        try:
            await self.sync()
            self._failing = False
        except Exception as exc:
            if not self._failing:  # once per outage
                log.warning("fleet: open breakers cannot be read (%s); each replica's alone", exc)
            self._failing = True
        return self.every_s

    async def sync(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in self._names:
                pipe.pttl(self.key(name))
            left = await pipe.execute()
        now = time.monotonic()
        for name, left_ms in zip(self._names, left, strict=True):
            if int(left_ms) <= 0:
                continue
            breaker = self.breakers[name]
            until = now + int(left_ms) / 1000
            if until <= breaker.open_until + SLACK_S:
                continue  # its own rest, or already held as long
            if breaker.available(now):
                breaker.history.append(
                    (time.time(), "open", f"another replica opened it; rests {left_ms / 1000:g} s")
                )
                log.warning("fleet: %s rests: another replica's breaker opened", name)
            breaker.open_until = until
