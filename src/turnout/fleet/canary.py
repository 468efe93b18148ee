"""A canary run by the fleet: the leader judges, every replica follows.

Every replica reads the published stage of each canary every `follow_s` and places new
conversations by it. The leader also re-reads the current stage's evidence from the record —
every replica's requests, not only its own — every `judge_s` (or ten times as long as the read
took, on a long stage), asks the gate, and takes a decision by publishing it (a write fenced by
its term: a deposed leader's late decision is refused) and then recording it as one migration
event, fenced again by the term in the record (`turnout.store.terms`). A successor finds a
published decision whose event never reached the record (its leader died in between, or the
record was down) and records it, so none is lost. Each event carries its decision's identity
(the published version and time), which the record keeps once however often it is written.

A stage's `since` is the leader's clock; placement follows the bucket of the conversation id,
which is the same on every replica, so a conversation stays on the candidate on every replica
while the canary runs (one that started on the old arm may join the candidate as the stage grows
when its next turn lands on a replica that had not seen it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from turnout.fleet.leader import Leadership
from turnout.fleet.loop import Loop
from turnout.migrate.canary import RUNNING, Canaries, Canary, Transition
from turnout.migrate.events import EventLog, MigrationEvent

log = logging.getLogger("turnout.fleet")


def board_key(c: Canary) -> str:
    return f"canary:{c.name}:{c.candidate}"


def decision_id(model: str, candidate: str, published: dict[str, Any]) -> str:
    """The same for every replica that reads the decision off the board."""
    return f"canary:{model}:{candidate}:{published['version']}:{published['at']!r}"


class CanaryFleet:
    def __init__(
        self,
        canaries: Canaries,
        leadership: Leadership,
        events: EventLog,
        url: str,
        *,
        follow_s: float = 0.25,
        judge_s: float = 0.5,
    ) -> None:
        self.canaries = list(canaries.all())
        self.leadership = leadership
        self.events = events
        self.url = url
        self.follow_s = follow_s
        self.judge_s = judge_s
        self._judged_at = 0.0  # loop time of the last judgement
        self._judge_every = judge_s
        self._loop = Loop(self._tick_safely, "fleet-canary")
        self._failing = False
        for c in self.canaries:
            c.fleet = True

    async def start(self) -> None:
        with contextlib.suppress(Exception):  # Redis away: the record's stage until it is back
            await self.tick()
        self._loop.start()

    async def close(self) -> None:
        await self._loop.stop()

    async def _tick_safely(self) -> float:
        try:
            await self.tick()
            self._failing = False
        except Exception as exc:  # one bad tick (Redis, the record) must not end the loop
            if not self._failing:  # once per outage, not every tick
                log.warning("fleet canary: %s: %s; holding the stage", type(exc).__name__, exc)
            self._failing = True
        return self.follow_s

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        judge = loop.time() - self._judged_at >= self._judge_every
        if judge:
            self._judged_at = loop.time()
        for c in self.canaries:
            version, text = await self.leadership.read(board_key(c))
            published = json.loads(text) if text else None
            if published is not None:
                c.follow(version, published)
            if self.leadership.leader:
                await self._lead(c, version, published, judge)

    async def _lead(
        self, c: Canary, version: int, published: dict[str, Any] | None, judge: bool
    ) -> None:
        last = await asyncio.to_thread(self.events.latest, c.name, "canary", c.candidate)
        reset = last is not None and last.kind == "reset"
        if published is None or (reset and last is not None and last.at > published["at"]):
            await self._begin(c, version, last)
            return
        self._record_if_lost(c, published, last)
        if not judge or c.status != RUNNING:
            return
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.to_thread(c.reload, self.url)
        # A long stage is a long read: never spend more than a tenth of the time reading it.
        self._judge_every = max(self.judge_s, 10 * (loop.time() - began))
        if not c.due():
            return
        t = c.decide()
        if t is not None:
            await self._decide(c, version, t)

    async def _begin(self, c: Canary, version: int, last: MigrationEvent | None) -> None:
        """The first leader to see this canary (or to see it reset) publishes where it stands."""
        fresh = last is None or last.kind == "reset"
        if fresh:
            c.restart(c.since if last is None else max(c.since, last.at))
        epoch = self.leadership.epoch
        state = {**c.published(), "version": version + 1, "at": c.since, "epoch": epoch}
        if fresh:  # a decision of its own: a successor records it if this leader cannot
            state |= {"kind": "started", "detail": c.start_detail()}
        if await self.leadership.publish(board_key(c), json.dumps(state), version + 1):
            c.version = version + 1
            if fresh:
                c.announce_start(decision_id(c.name, c.candidate, state), self._term())
            log.info(
                "fleet canary of %s on %s: stage %d (%g%%), %s, published for the fleet",
                c.name,
                c.candidate,
                c.stage + 1,
                c.percent,
                c.status,
            )

    async def _decide(self, c: Canary, version: int, t: Transition) -> None:
        at = time.time()
        decision = {"version": version + 1, "epoch": self.leadership.epoch, "at": at}
        detail = {**t.detail, "fleet": decision}
        state = {**t.published(), **decision, "detail": detail, "why": t.why}
        if not await self.leadership.publish(board_key(c), json.dumps(state), version + 1):
            log.info("fleet canary of %s: %s not taken: no longer the leader", c.name, t.kind)
            return
        c.version = version + 1
        t = Transition(t.kind, t.status, t.stage, t.since, detail, t.why)
        c.apply(t, decision=decision_id(c.name, c.candidate, state), term=self._term())

    def _term(self) -> int | None:
        """The term a decision is fenced by in the record; none for a lone gateway."""
        return None if self.leadership.redis is None else self.leadership.epoch

    def _record_if_lost(
        self, c: Canary, published: dict[str, Any], last: MigrationEvent | None
    ) -> None:
        """A published decision whose event is not in the record: its leader died between the
        two, or the record refused the write. Recorded now by the current leader; the record
        keeps a decision once, so a late write of the original changes nothing."""
        if published.get("kind") in (None, "resumed"):
            return
        if last is not None and last.at > published["at"]:
            return
        detail = {**published["detail"]}
        if published.get("epoch") != self.leadership.epoch:
            detail["recorded_by_successor"] = True
        recorded = self.events.append(
            c.name, "canary", c.candidate, published["kind"],
            stage=published["stage"], percent=c.percent, detail=detail,
            decision=decision_id(c.name, c.candidate, published), term=self._term(),
        )  # fmt: skip
        if recorded:
            log.warning(
                "fleet canary of %s on %s: the %s of epoch %s was published but not recorded; "
                "recorded now",
                c.name,
                c.candidate,
                published["kind"],
                published.get("epoch"),
            )
