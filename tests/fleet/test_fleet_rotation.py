"""A fingerprint alarm's hold, taken by the leader's watch, holds on every replica."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis_server import RedisServer

from turnout.config.schema import Cooldown
from turnout.fingerprint.alarms import BreakerRotation
from turnout.fleet.leader import Elected
from turnout.fleet.rotation import SharedRotation
from turnout.lifecycle.policy import Breaker


async def eventually(check: Callable[[], bool], within_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


def test_the_leaders_take_out_and_put_back_reach_every_replica(redis: RedisServer) -> None:
    async def go() -> None:
        leaders = [Elected(redis.url, 1.0, replica=f"r{k}") for k in range(2)]
        breakers = [{"edge": Breaker(Cooldown())} for _ in range(2)]
        rotations = [
            SharedRotation(BreakerRotation(breakers[k]), leaders[k], ["edge"], every_s=0.05)
            for k in range(2)
        ]
        try:
            for k in range(2):
                await leaders[k].start()
                await rotations[k].start()
            lead = 0 if leaders[0].leader else 1
            other = 1 - lead
            assert breakers[other]["edge"].available()
            rotations[lead].take_out("edge", 60.0)  # the leader's watch raised its alarm
            assert not breakers[lead]["edge"].available()
            await eventually(lambda: not breakers[other]["edge"].available())
            rotations[lead].put_back("edge")  # a check passed again
            await eventually(lambda: breakers[other]["edge"].available())
        finally:
            for r in rotations:
                await r.stop()
            for leader in leaders:
                await leader.close()

    asyncio.run(go())
