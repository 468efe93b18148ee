"""Key limits shared by gateway replicas through Redis, exact across them.

Each key's sliding log is a sorted set in Redis (member `<id>:<requests>:<tokens>`, scored by
the admission time on Redis's own clock) with its totals beside it; one Lua script trims,
checks and reserves, so N replicas together admit exactly the key's limit. Spend per period is
a float counter next to them; `on_spend` hands every settled cost to the durable record.

Every replica also keeps its own admissions in a local log. **When Redis goes away** it
enforces alone on that log with each limit divided by the last known number of replicas
(`floor(limit / replicas)`, at least 1 unless the limit is 0), and lets its share of the budget
left at the outage be spent (`known + local × replicas < budget`). Replicas are counted by a
heartbeat: each writes itself every `heartbeat_s` into a sorted set, and one missing for three
beats is gone. The outage is logged once and `turnout_auth_shared_up` drops to 0; the
heartbeat keeps trying, and when Redis answers again the replica first writes back what it
admitted and spent alone (and, if Redis lost its data, its whole log and the spend it knew),
then goes back to shared. Nothing waits on Redis longer than its socket timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from turnout.auth.keys import period_start
from turnout.auth.limits import (
    WINDOW_S,
    AlertHook,
    KeyLimits,
    LocalLimits,
    SpendHook,
    Verdict,
    budget_retry,
    check_counts,
    rate_headers,
)
from turnout.auth.limits_scripts import SCRIPTS
from turnout.auth.resp import Redis, Script

log = logging.getLogger("turnout.auth.limits")

_CALL_S = 2.0  # one exchange with Redis, connecting and loading a script included, at the most
# A settle (after the response) waits this long for another command to share its write: the
# next admission, or other settles. It saves Redis and this process a round trip each.
_SETTLE_LINGER_S = 0.005


def _divided(limit: int | None, replicas: int) -> int | None:
    if limit is None or limit == 0:
        return limit
    return max(1, limit // replicas)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class SharedLimits:
    """`Limits` shared through Redis. `await start()` before use, `await close()` after;
    `seed` raises a key's spend to what the durable record holds."""

    def __init__(
        self,
        redis_url: str,
        registry: CollectorRegistry | None = None,
        *,
        window_s: float = WINDOW_S,
        heartbeat_s: float = 1.0,
        replicas: int = 1,
        prefix: str = "turnout:",
        on_spend: SpendHook | None = None,
        on_alert: AlertHook | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.registry = registry
        self.window_s = window_s
        self.heartbeat_s = heartbeat_s
        self.prefix = prefix
        self.on_spend = on_spend
        self.on_alert = on_alert
        self.replica = os.urandom(6).hex()
        self.replicas = replicas  # alive at the last heartbeat (assumed until one counts)
        self._behind = False  # this replica admitted or spent what Redis has not seen
        self.up = False
        self.local = LocalLimits(window_s=window_s)  # this replica's own admissions and spend
        self._ids = itertools.count(1)
        # settles Redis has not counted, by their id: key id, period start, period_s, usd
        self._unsent: dict[str, tuple[str, float, float | None, float]] = {}
        # what Redis held of a key's spend before it lost it: usd, period_s
        self._floors: dict[tuple[str, float], tuple[float, float | None]] = {}
        self._epoch: bytes | None = None
        self._warned = False
        self._redis: Redis | None = None
        self._scripts = {name: Script(body) for name, body in SCRIPTS.items()}
        self._beat: asyncio.Task[None] | None = None
        self._closing = False
        self.gauge_up = Gauge(
            "turnout_auth_shared_up",
            "1 while key limits are shared through Redis, 0 while this gateway enforces alone",
            registry=registry,
            multiprocess_mode="livemin",  # of several workers: 0 while any one works alone
        )
        self.gauge_replicas = Gauge(
            "turnout_auth_shared_replicas",
            "Gateway replicas sharing key limits at the last heartbeat (divides them when alone)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.gauge_up.set(0)
        self.gauge_replicas.set(replicas)

    # -- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        # One pipelined connection: a burst shares its writes instead of opening connections.
        # A reply late because this machine was busy must not look like Redis gone (the
        # admission it made would count twice, in Redis and in the fallback's share), hence a
        # second to answer; and every exchange has a hard deadline, so nothing waits forever.
        self._redis = Redis(
            self.redis_url,
            reply_timeout_s=1.0,
            connect_timeout_s=0.5,
            linger_s=_SETTLE_LINGER_S,
        )
        await self._heartbeat()
        self._beat = asyncio.create_task(self._beating())

    async def close(self) -> None:
        self._closing = True
        if self._beat is not None:
            # Should a cancellation be lost in an exchange, the flag ends the loop at its next
            # beat all the same.
            self._beat.cancel()
            await asyncio.wait([self._beat], timeout=self.heartbeat_s + _CALL_S)
        if self._redis is not None:
            if self.up:
                with contextlib.suppress(Exception):  # it drops out of the count by itself
                    await self._redis.call("ZREM", self._key("replicas"), self.replica)
            await self._redis.close()

    async def _beating(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.heartbeat_s)
            if not self._closing:
                await self._heartbeat()

    async def _heartbeat(self) -> None:
        try:
            alive, epoch = await self._run(
                "heartbeat",
                keys=[self._key("replicas"), self._key("epoch")],
                args=[self.replica, _ms(3 * self.heartbeat_s), os.urandom(8).hex()],
            )
            if epoch != self._epoch:  # a new Redis, or one that lost its data
                if self._epoch is not None:
                    log.warning(
                        "key limits: Redis at %s lost its data; writing back what this replica "
                        "knows (alone until done)",
                        self._where,
                    )
                self.up = False  # no admission against the empty counters meanwhile
                self.gauge_up.set(0)
                self._forget_stored()
            self.replicas = max(1, int(alive))
            self.gauge_replicas.set(self.replicas)
            if self._behind:
                await self._write_back()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._down("heartbeat", exc)
            return
        self._epoch = epoch
        if not self.up:
            log.info(
                "key limits shared through Redis at %s with %d replicas", self._where, self.replicas
            )
            self._warned = False
        self.up = True
        self.gauge_up.set(1)

    async def _run(
        self, script: str, keys: list[str], args: list[Any], *, lazy: bool = False
    ) -> Any:
        if self._redis is None:
            raise ConnectionError("not started")
        scripted = self._scripts[script]
        return await self._redis.script(scripted, keys, args, within_s=_CALL_S, lazy=lazy)

    def _down(self, operation: str, exc: BaseException) -> None:
        if not self._warned:
            log.warning(
                "key limits: Redis at %s failed (%s: %s); enforcing alone with limits divided "
                "by %d replicas until it is back",
                self._where,
                operation,
                type(exc).__name__,
                self.replicas,
            )
            self._warned = True
        self.up = False
        self.gauge_up.set(0)

    @property
    def _where(self) -> str:
        return self.redis_url.split("@")[-1]  # never a password in the log

    def _key(self, *parts: str) -> str:
        return self.prefix + "limits:" + ":".join(parts)

    def _keys(self, key_id: str) -> list[str]:
        tag = "{" + key_id + "}"  # one hash slot per key
        return [self._key(tag, "log"), self._key(tag, "totals")]

    def _spend_key(self, key_id: str, start: float, kind: str = "spend") -> str:
        return self._key("{" + key_id + "}", kind, repr(start))

    def _member(self, entry_id: str, requests: int, tokens: int) -> str:
        return f"{entry_id}:{requests}:{tokens}"

    # -- admit -----------------------------------------------------------------------------

    async def admit(self, limits: KeyLimits, predicted_tokens: int) -> Verdict:
        check_counts(predicted_tokens)
        if not limits.windowed and limits.budget_usd is None:
            return Verdict(True, None, None, {})
        if self.up:
            member = self._member(self._new_id(), 1, predicted_tokens)
            wall = time.time()
            start = period_start(wall, limits.budget_period_s)
            try:
                reason, n, tok, retry, reset_n, reset_tok, spend = await self._run(
                    "admit",
                    keys=[*self._keys(limits.key_id), self._spend_key(limits.key_id, start)],
                    args=[
                        _ms(self.window_s),
                        _limit(limits.rpm),
                        _limit(limits.tpm),
                        predicted_tokens,
                        member,
                        _limit(limits.budget_usd),
                    ],
                )
            except Exception as exc:
                self._down("admit", exc)
            else:
                self.local.spend.set(limits.key_id, limits.budget_period_s, start, float(spend))
                headers = rate_headers(limits, int(n), int(tok), reset_n / 1000, reset_tok / 1000)
                if reason == b"budget":
                    return Verdict(False, "budget", budget_retry(limits, wall), headers)
                if reason:
                    after = None if retry < 0 else retry / 1000
                    return Verdict(False, reason.decode(), after, headers)
                if limits.windowed:
                    entry = self.local.record(limits, predicted_tokens)
                    entry.member = entry.stored = member
                return Verdict(True, None, None, headers)
            return self._admit_alone(limits, predicted_tokens, member)
        return self._admit_alone(limits, predicted_tokens, None)

    def _admit_alone(self, limits: KeyLimits, predicted_tokens: int, member: str | None) -> Verdict:
        """Admit on this replica's own log with its share of the limits. `member` names the
        entry as a timed-out attempt may have written it, so writing it back counts it once."""
        share = dataclasses.replace(
            limits, rpm=_divided(limits.rpm, self.replicas), tpm=_divided(limits.tpm, self.replicas)
        )
        wall = time.time()
        start = period_start(wall, limits.budget_period_s)
        spent = self.local.spend.get(limits.key_id, limits.budget_period_s, wall)
        alone = self._alone_usd(limits.key_id, start)
        verdict, entry = self.local.admit_entry(
            share, predicted_tokens, spent_usd=spent + alone * (self.replicas - 1)
        )
        if entry is not None:
            entry.member = member or self._member(self._new_id(), 1, predicted_tokens)
            self._behind = True
        return verdict

    def _new_id(self) -> str:
        return f"{self.replica}-{next(self._ids)}"

    def _alone_usd(self, key_id: str, start: float) -> float:
        return sum(u[3] for u in self._unsent.values() if u[0] == key_id and u[1] == start)

    # -- settle ----------------------------------------------------------------------------

    async def settle(
        self, limits: KeyLimits, predicted_tokens: int, tokens: int, cost_usd: float
    ) -> None:
        check_counts(predicted_tokens, tokens, cost_usd)
        entry, extra = self.local.correct(limits, predicted_tokens, tokens)
        corrected = stored = extra_name = ""
        if entry is not None and entry.member is not None:
            entry_id = entry.member.split(":", 1)[0]
            corrected = self._member(entry_id, 1, tokens)
            stored = entry.stored or ""
            extra_name = self._member(entry_id + "+", 0, tokens - predicted_tokens)
            if entry.tokens == tokens:  # still in this replica's window
                entry.member = corrected
        elif limits.windowed:
            extra_name = self._member(self._new_id() + "+", 0, tokens - predicted_tokens)
        if extra is not None:
            extra.member = extra_name
        wall = time.time()
        start = period_start(wall, limits.budget_period_s)
        windows = limits.windowed and tokens != predicted_tokens
        settle_id = self._new_id()
        if self.up and (windows or cost_usd > 0):
            soft = -1.0
            if limits.alert_at is not None and limits.budget_usd is not None:
                soft = limits.alert_at * limits.budget_usd
            try:
                spend, alert = await self._run(
                    "settle",
                    keys=[
                        *self._keys(limits.key_id),
                        self._spend_key(limits.key_id, start),
                        self._spend_key(limits.key_id, start, "alerted"),
                        self._settled_key(limits.key_id, settle_id),
                    ],
                    args=[
                        _ms(self.window_s),
                        stored,
                        corrected,
                        extra_name,
                        tokens,
                        predicted_tokens,
                        repr(cost_usd),
                        self._spend_ttl_ms(limits),
                        soft,
                    ],
                    lazy=True,
                )
            except Exception as exc:
                self._down("settle", exc)
            else:
                if entry is not None and stored:
                    entry.stored = entry.member = corrected
                if extra is not None:
                    extra.stored = extra_name
                self._spent(limits, start, cost_usd, float(spend), bool(alert))
                return
        if windows or cost_usd > 0:
            self._behind = True  # Redis has not seen this settle
        if cost_usd > 0:
            self._unsent[settle_id] = (limits.key_id, start, limits.budget_period_s, cost_usd)
            spent = self.local.spend.add(limits.key_id, limits.budget_period_s, start, cost_usd)
            self._spent(
                limits, start, cost_usd, spent, self.local.spend.first_alert(limits, start, spent)
            )

    def _spent(
        self, limits: KeyLimits, start: float, cost_usd: float, spent: float, alert: bool
    ) -> None:
        self.local.spend.set(limits.key_id, limits.budget_period_s, start, spent)
        if cost_usd > 0 and self.on_spend is not None:
            self.on_spend(limits.key_id, start, cost_usd)
        if alert and self.on_alert is not None and limits.budget_usd is not None:
            self.on_alert(limits.key_id, start, spent, limits.budget_usd)

    def _spend_ttl_ms(self, limits: KeyLimits) -> int:
        return _spend_ttl_ms(limits.budget_period_s)

    def _settled_key(self, key_id: str, settle_id: str) -> str:
        return self._key("{" + key_id + "}", "settled", settle_id)

    def spent_usd(self, key_id: str) -> float:
        return self.local.spend.now(key_id, time.time())

    async def seed(self, limits: KeyLimits, start: float, usd: float) -> None:
        """What the durable record says the key spent in the period from `start`: Redis's
        counter is raised to it if lower (after Redis lost its data, say)."""
        self.local.seed_spend(limits, start, usd)
        if self.up:
            try:
                await self._run(
                    "restore_spend",
                    keys=[self._spend_key(limits.key_id, start)],
                    args=[repr(usd), 0, self._spend_ttl_ms(limits)],
                )
            except Exception as exc:
                self._down("seed", exc)

    # -- back to shared --------------------------------------------------------------------

    def _forget_stored(self) -> None:
        self._behind = True
        for window in self.local.windows.values():
            for entry in window.entries:
                entry.stored = None
        for key_id, period_s, start, usd in self.local.spend.known():
            self._floors[(key_id, start)] = (usd - self._alone_usd(key_id, start), period_s)

    async def _write_back(self) -> None:
        """Write into Redis what this replica admitted and spent while it could not."""
        while True:
            now = self.local.clock()
            todo = []
            for key_id, window in list(self.local.windows.items()):
                window.expire(now, self.window_s)
                stale = [e for e in window.entries if e.member is not None and e.member != e.stored]
                if stale:
                    todo.append((key_id, stale))
            floors, unsent = list(self._floors.items()), list(self._unsent.items())
            if not todo and not floors and not unsent:
                self._behind = False
                return
            for key_id, stale in todo:
                sent = [(e, e.member) for e in stale]  # a settle may rename one meanwhile
                args: list[Any] = [_ms(self.window_s)]
                for e, member in sent:
                    args += [_ms(now - e.at), member, e.stored or ""]
                await self._run("restore", keys=self._keys(key_id), args=args)
                for e, member in sent:
                    e.stored = member
            for (key_id, start), (usd, period_s) in floors:  # before what is added to them
                await self._run(
                    "restore_spend",
                    keys=[self._spend_key(key_id, start)],
                    args=[repr(usd), 0, _spend_ttl_ms(period_s)],
                )
                self._floors.pop((key_id, start), None)
            for settle_id, (key_id, start, period_s, usd) in unsent:
                await self._run(
                    "restore_spend",
                    keys=[self._spend_key(key_id, start), self._settled_key(key_id, settle_id)],
                    args=[0, repr(usd), _spend_ttl_ms(period_s)],
                )
                self._unsent.pop(settle_id, None)


def _spend_ttl_ms(period_s: float | None) -> int:
    """A spend counter lives an hour past its period's end; one that never resets, forever."""
    return -1 if period_s is None else _ms(period_s + 3600)


def _limit(value: float | None) -> float:
    return -1 if value is None else value
