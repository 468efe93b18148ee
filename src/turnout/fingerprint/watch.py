"""The watch: scheduled checks of each deployment against its baseline, and passive monitoring.

Each watched deployment gets a loop: probe within the budget, compare with the baseline, store
the check, and feed the verdict to its Streak; two rejections in a row raise an alarm (a record,
metrics, a log line, and, if configured, the deployment leaves rotation until a check passes).

In a fleet, only the leader probes and raises alarms; what an alarm takes out of rotation is
out on every replica (`turnout.fleet.rotation`). A replica that becomes leader takes over
the schedule (due one period after the fleet's last check) and the streak from the store; the
others keep reading the record passively, holding back what they find, so a new leader alarms a
shift its predecessor died before alarming, and nothing else twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from turnout.backends.base import Backend
from turnout.config import Price
from turnout.fingerprint.alarms import (
    CLEARED,
    PASSIVE,
    RAISED,
    BreakerRotation,
    Rotation,
    Streak,
    WatchMetrics,
)
from turnout.fingerprint.compare import compare
from turnout.fingerprint.passive import PassiveMonitor, RouteShift
from turnout.fingerprint.runner import Budget, ProbeRunner, new_id
from turnout.fingerprint.samples import ProbeRun
from turnout.fingerprint.settings import WatchSettings, WatchTarget
from turnout.fingerprint.store import AlarmRecord, CheckRecord, FingerprintStore
from turnout.fingerprint.suite import Suite, resolve_suite

if TYPE_CHECKING:
    from turnout.fleet.leader import Leadership
    from turnout.gateway import Gateway

log = logging.getLogger("turnout.fingerprint")

FIRST_CHECK_S = 10.0  # after start, when a deployment has never been checked
FOLLOW_S = 1.0  # how often a replica that does not lead asks again
HELD = 200  # passive findings a replica that does not lead keeps, for when it leads


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


class Watcher:
    def __init__(
        self,
        settings: WatchSettings,
        *,
        backends: Mapping[str, Backend],
        store: FingerprintStore,
        prices: Mapping[str, Price] | None = None,
        concurrency: Mapping[str, int] | None = None,
        registry: CollectorRegistry | None = None,
        rotation: Rotation | None = None,
        record_url: str | None = None,
        on_alarm: Callable[[AlarmRecord], None] | None = None,
        seed: int | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        """`seed` makes every check's requests and permutations reproducible (drills, tests)."""
        self.settings = settings
        self.seed = seed
        self._cycles = 0
        self.backends = backends
        self.store = store
        self.prices = dict(prices or {})
        self.concurrency = dict(concurrency or {})
        self.metrics = WatchMetrics(registry or CollectorRegistry())
        self.rotation = rotation
        self.on_alarm = on_alarm
        self.targets = {t.deployment: t for t in settings.targets}
        missing = sorted(set(self.targets) - set(backends))
        if missing:
            raise ValueError(f"watch: no deployment {missing[0]!r} is served (by this gateway)")
        self.streaks = {name: Streak(settings.consecutive) for name in self.targets}
        self.passive = (
            PassiveMonitor(record_url, settings.passive)
            if settings.passive is not None and record_url
            else None
        )
        self._suites: dict[str, Suite] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # With an elected leader: only it probes and alarms. Without one, this gateway does.
        self.leadership = (
            leadership if leadership is not None and leadership.redis is not None else None
        )
        self._terms: dict[str, int] = {}  # the term of leadership each loop last checked in
        self._held: list[RouteShift] = []  # passive findings while not leading
        self._passive_term = 0

    @classmethod
    def for_gateway(cls, gateway: Gateway, settings: WatchSettings | None = None) -> Watcher | None:
        """A watch over the gateway's own backends, or None when nothing is to be watched.

        Settings come from `settings`, else the config's `fingerprint:` section.
        """
        if settings is None:
            settings = gateway.config.fingerprint
        if not settings.enabled:
            return None
        deployments = gateway.config.deployments
        rotation: Rotation = BreakerRotation(gateway.breakers)
        if gateway.leadership.redis is not None:  # a fleet: the alarm holds on every replica
            from turnout.fleet.rotation import SharedRotation

            held = [t.deployment for t in settings.targets if t.take_out]
            rotation = SharedRotation(rotation, gateway.leadership, held)
        return cls(
            settings,
            backends=gateway.backends,
            store=FingerprintStore(settings.store or gateway.config.store.url),
            prices={name: dep.price for name, dep in deployments.items()},
            concurrency={
                n: d.max_concurrency or settings.concurrency for n, d in deployments.items()
            },
            registry=gateway.metrics.registry,
            rotation=rotation,
            record_url=gateway.config.store.url,
            leadership=gateway.leadership,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if hasattr(self.rotation, "start"):  # shared with the fleet
            await self.rotation.start()
        for target in self.targets.values():
            self._tasks.append(
                asyncio.create_task(self._loop(target), name=f"watch-{target.deployment}")
            )
        if self.passive is not None and self.settings.passive is not None:
            self._tasks.append(
                asyncio.create_task(
                    self._passive_loop(self.settings.passive.every_s), name="watch-passive"
                )
            )
        names = ", ".join(self.targets) or "no deployments"
        log.info(
            "fingerprint watch: %s%s", names, "; passive monitoring on" if self.passive else ""
        )

    def _unalarmed(self, held: list[RouteShift]) -> list[RouteShift]:
        """What the replica found while another led, that no leader alarmed."""
        alarmed = {
            (a.deployment, a.detail.get("request_id"), a.detail.get("signal"))
            for a in self.store.alarms(limit=1000)
            if a.kind == PASSIVE
        }
        return [s for s in held if (s.deployment, s.request_id, s.signal) not in alarmed]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if hasattr(self.rotation, "stop"):
            await self.rotation.stop()
        self.store.close()

    def _first_delay(self, target: WatchTarget) -> float:
        """Keep the schedule across restarts: the next check is due one period after the last."""
        last = self.store.checks(target.deployment, limit=1)
        if not last:
            return min(FIRST_CHECK_S, target.every_s)
        return min(target.every_s, max(0.0, last[-1].at + target.every_s - time.time()))

    def leads(self) -> bool:
        return self.leadership is None or self.leadership.leader

    async def _take_over(self, target: WatchTarget) -> float:
        """On a new term: the fleet's streak from the store; how long until the check is due."""
        assert self.leadership is not None
        self._terms[target.deployment] = self.leadership.epoch
        self.streaks[target.deployment] = await asyncio.to_thread(self._stored_streak, target)
        return await asyncio.to_thread(self._first_delay, target)

    def _stored_streak(self, target: WatchTarget) -> Streak:
        streak = Streak(self.settings.consecutive)
        for check in reversed(self.store.checks(target.deployment, limit=50)):
            if not check.changed:
                break
            streak.count += 1
            streak.since = check.at
        kinds = [a.kind for a in self.store.alarms(target.deployment, limit=50)]
        raised = [k for k in kinds if k in (RAISED, CLEARED)]
        streak.alarmed = bool(raised) and raised[-1] == RAISED
        return streak

    async def _loop(self, target: WatchTarget) -> None:
        delay = await asyncio.to_thread(self._first_delay, target)
        while True:
            await asyncio.sleep(delay)
            if not self.leads():
                delay = min(FOLLOW_S, target.every_s)
                continue
            fresh = self.leadership is not None and (
                self._terms.get(target.deployment) != self.leadership.epoch
            )
            if fresh:
                delay = await self._take_over(target)
                if delay > 0:
                    continue
            try:
                await self.check(target.deployment)
            except Exception:
                # One bad cycle (store busy, baseline missing) must not end the watch.
                self.metrics.checks.labels(target.deployment, "error").inc()
                log.exception("fingerprint check of %s failed", target.deployment)
            delay = target.every_s

    async def _passive_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.scan_passive()
            except Exception:
                log.exception("fingerprint: passive monitoring failed")

    # -- one cycle ---------------------------------------------------------------------------

    def _suite(self, target: WatchTarget, baseline: ProbeRun) -> Suite:
        if target.suite is None and baseline.suite_spec is not None:
            base = Suite.from_spec(baseline.suite_spec)
        else:
            spec = target.suite or "builtin"
            if spec not in self._suites:
                self._suites[spec] = resolve_suite(spec)
            base = self._suites[spec]
        return base.with_options(samples_per_probe=math.ceil(target.samples / len(base.probes)))

    async def check(self, deployment: str) -> CheckRecord | None:
        """Probe `deployment` once and judge it against its baseline; None if nothing came back."""
        target = self.targets[deployment]
        baseline = await asyncio.to_thread(self.store.baseline, target.baseline)
        self._cycles += 1
        seed = None if self.seed is None else self.seed + self._cycles
        runner = ProbeRunner(
            self.backends[deployment],
            self._suite(target, baseline),
            deployment=deployment,
            price=self.prices.get(deployment),
            budget=Budget(max_samples=target.samples, max_cost_usd=target.max_cost_usd),
            concurrency=self.concurrency.get(deployment, self.settings.concurrency),
            seed=seed,
        )
        run = await runner.run()
        await asyncio.to_thread(self.store.save_run, run)
        self.metrics.cost.labels(deployment).inc(run.cost_usd)
        if not run.completions():
            self.metrics.checks.labels(deployment, "error").inc()
            first = next((s.error for s in run.samples if s.error), "no samples")
            log.warning("fingerprint check of %s: no completions (%s)", deployment, first)
            return None
        verdict = await asyncio.to_thread(
            compare,
            baseline,
            run,
            alpha=self.settings.alpha,
            permutations=self.settings.permutations,
            seed=seed,
        )
        record = CheckRecord(
            id=new_id("chk"),
            at=time.time(),
            deployment=deployment,
            baseline=target.baseline,
            run_id=run.id,
            changed=verdict.changed,
            min_p=verdict.min_p,
            verdict=verdict.as_dict(),
        )
        await asyncio.to_thread(self.store.save_check, record)
        self.metrics.checks.labels(deployment, "changed" if verdict.changed else "unchanged").inc()
        self.metrics.p_value.labels(deployment).set(verdict.min_p)
        log.info("fingerprint check of %s: %s", deployment, verdict.summary())
        await self._after(target, record)
        return record

    async def _after(self, target: WatchTarget, check: CheckRecord) -> None:
        if not self.leads():  # deposed while probing: the check stands, the next leader judges
            return
        streak = self.streaks[target.deployment]
        since = streak.since if check.changed and streak.count else check.at
        change = streak.observe(check.changed, check.at)
        since = streak.since or since
        if change is None:
            if streak.alarmed and target.take_out and self.rotation is not None:
                self.rotation.take_out(target.deployment, 1.5 * target.every_s)
            return
        dep = target.deployment
        if change == RAISED:
            message = (
                f"fingerprint ALARM: {dep} no longer behaves like baseline {target.baseline!r}: "
                f"{streak.count} checks in a row rejected at α={self.settings.alpha:g}, since "
                f"{_when(since)}; {check.verdict['summary']}"
            )
            log.warning(message)
            self.metrics.alarm.labels(dep).set(1)
            self.metrics.alarms.labels(dep, RAISED).inc()
            if target.take_out and self.rotation is not None:
                self.rotation.take_out(dep, 1.5 * target.every_s)
                message += "; taken out of rotation"
        else:
            message = f"fingerprint: {dep} behaves like baseline {target.baseline!r} again"
            log.info(message)
            self.metrics.alarm.labels(dep).set(0)
            if target.take_out and self.rotation is not None:
                self.rotation.put_back(dep)
        detail: dict[str, Any] = {
            "baseline": target.baseline,
            "check": check.id,
            "since": since,
            "reasons": check.verdict.get("reasons", []),
        }
        alarm = AlarmRecord(new_id("alm"), check.at, dep, change, message, detail)
        if not await self._save(alarm):
            return
        if self.on_alarm is not None:
            self.on_alarm(alarm)

    async def _save(self, alarm: AlarmRecord) -> bool:
        """Record an alarm, fenced by this leader's term: False when a newer leader has begun
        (this one stalled past its lease), which judges again from the record."""
        term = None if self.leadership is None else self.leadership.epoch
        saved: bool = await asyncio.to_thread(self.store.save_alarm, alarm, term)
        if not saved:
            log.warning(
                "fingerprint: the %s alarm of %s not recorded: a newer leader decides now",
                alarm.kind,
                alarm.deployment,
            )
        return saved

    async def scan_passive(self) -> list[AlarmRecord]:
        if self.passive is None:
            return []
        shifts: list[RouteShift] = await asyncio.to_thread(self.passive.scan)
        if not self.leads():
            self._held = (self._held + shifts)[-HELD:]
            return []
        if self.leadership is not None and self._passive_term != self.leadership.epoch:
            self._passive_term = self.leadership.epoch
            shifts = await asyncio.to_thread(self._unalarmed, self._held) + shifts
            self._held = []
        out = []
        for s in shifts:
            message = f"fingerprint passive: {s.describe()}"
            log.warning(message)
            self.metrics.alarms.labels(s.deployment, PASSIVE).inc()
            detail = {
                "model": s.model,
                "signal": s.signal,
                "direction": s.shift.direction,
                "reference": s.shift.reference,
                "recent": s.shift.recent,
                "request_id": s.request_id,
            }
            alarm = AlarmRecord(new_id("alm"), s.at, s.deployment, PASSIVE, message, detail)
            if not await self._save(alarm):
                break
            if self.on_alarm is not None:
                self.on_alarm(alarm)
            out.append(alarm)
        return out
