"""One shadow budget for the whole fleet: a spend counter in Redis that every replica adds to.

Each replica adds what its finished shadows cost (INCRBYFLOAT, atomic) and reads the fleet's total
every `sync_s`, so together the replicas stop at the budget. What can overshoot it: shadows already
in flight when it is reached, and those started within one `sync_s` of another replica's spend —
each at most `max_in_flight` per replica. Every replica that sees the total cross the budget
records the stop under one decision identity, which the record keeps once: it is recorded once,
and still recorded when the replica whose spend crossed it dies before it could. While Redis is
away no shadow starts (a budget that cannot be checked is not spent); costs that could not be
added are added when it is back.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("turnout.fleet")

PREFIX = "turnout:fleet:shadow:"


class SharedSpend:
    """The fleet's spend on one model's shadows."""

    def __init__(self, redis: Any, model: str, candidate: str) -> None:
        self.redis = redis
        self.key = f"{PREFIX}{model}:{candidate}:spent_usd"
        self.total = 0.0  # the fleet's, as last read
        self.unsent = 0.0  # spent here, not yet added to the fleet's
        self.recorded = 0.0  # what the record says was spent, to start the counter from
        self.up = False

    async def seed(self, recorded: float) -> None:
        """The first replica up starts the counter from the record; the others find it set."""
        self.recorded = recorded
        await self.redis.set(self.key, repr(recorded), nx=True)
        await self.sync()

    def add(self, cost: float) -> None:
        self.unsent += cost

    @property
    def spent(self) -> float:
        return self.total + self.unsent

    async def sync(self) -> bool:
        """Add what is unsent and read the fleet's total; False while Redis is away."""
        try:
            if self.unsent:
                sending, self.unsent = self.unsent, 0.0
                try:
                    self.total = float(await self.redis.incrbyfloat(self.key, sending))
                except Exception:
                    self.unsent += sending
                    raise
            else:
                value = await self.redis.get(self.key)
                if value is None:  # never seeded (Redis was away), or Redis lost it
                    await self.redis.set(self.key, repr(self.recorded), nx=True)
                    value = await self.redis.get(self.key)
                self.total = float(value)
        except Exception as exc:
            if self.up:
                log.warning(
                    "shadow budget %s: Redis failed (%s); no shadows until it is back",
                    self.key,
                    exc,
                )
            self.up = False
            return False
        self.up = True
        return True
