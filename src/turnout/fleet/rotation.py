"""A fingerprint alarm takes a deployment out of rotation on every replica, not only the leader's.

The leader's watch takes it out as before, and writes the hold to Redis as a key that expires
with it; every other replica reads the keys every `every_s` and holds the deployment out for as
long as the key has left (a leader that dies stops renewing it, so the hold lapses by itself,
as it does on one gateway). Putting it back deletes the key.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from turnout.fingerprint.alarms import Rotation
from turnout.fleet.leader import PREFIX, Leadership
from turnout.fleet.loop import Loop, Writes

log = logging.getLogger("turnout.fleet")


class SharedRotation:
    def __init__(
        self,
        local: Rotation,
        leadership: Leadership,
        deployments: Iterable[str],
        every_s: float = 1.0,
    ) -> None:
        self.local = local
        self.leadership = leadership
        self.deployments = tuple(deployments)
        self.every_s = every_s
        self.out: set[str] = set()  # held out here because the fleet's leader said so
        self._writes = Writes(log, "rotation")
        self._follower = Loop(self._follow, "fleet-rotation")

    def _key(self, deployment: str) -> str:
        return f"{PREFIX}rotation:out:{deployment}"

    # -- the leader's watch ----------------------------------------------------------------------

    def take_out(self, deployment: str, hold_s: float) -> None:
        self.local.take_out(deployment, hold_s)
        ms = max(1, round(hold_s * 1000))
        self._writes.send(self.leadership.redis.set(self._key(deployment), "1", px=ms))

    def put_back(self, deployment: str) -> None:
        self.local.put_back(deployment)
        self._writes.send(self.leadership.redis.delete(self._key(deployment)))

    # -- every other replica -----------------------------------------------------------------------

    async def start(self) -> None:
        self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()
        await self._writes.cancel()

    async def _follow(self) -> float:
        if not self.leadership.leader:  # the leader's own watch decides
            with contextlib.suppress(Exception):  # Redis away: holds lapse by themselves
                await self.sync()
        return self.every_s

    async def sync(self) -> None:
        for dep in self.deployments:
            left_ms = int(await self.leadership.redis.pttl(self._key(dep)))
            if left_ms > 0:
                if dep not in self.out:
                    log.warning("fleet: %s taken out of rotation by the leader's watch", dep)
                self.local.take_out(dep, left_ms / 1000)
                self.out.add(dep)
            elif dep in self.out:
                self.local.put_back(dep)
                self.out.discard(dep)
                log.info("fleet: %s back in rotation", dep)
