"""When a watch raises its alarm, and what it does then: the record, metrics, a log line, and
optionally taking the deployment out of rotation."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from turnout.lifecycle.policy import Breaker

log = logging.getLogger("turnout.fingerprint")

RAISED, CLEARED, PASSIVE = "raised", "cleared", "passive"


@dataclass(slots=True)
class Streak:
    """Consecutive rejections of one deployment's checks.

    The alarm is raised at the `needed`-th rejection in a row and cleared by the next check that
    passes; checks that failed to run leave it as it is. At per-check level α, a false alarm
    needs `needed` false rejections in a row: about α² per cycle for two.
    """

    needed: int = 2
    count: int = 0
    alarmed: bool = False
    since: float | None = None  # when the first rejection of the current streak happened

    def observe(self, changed: bool, at: float) -> str | None:
        if changed:
            self.count += 1
            if self.count == 1:
                self.since = at
            if self.count >= self.needed and not self.alarmed:
                self.alarmed = True
                return RAISED
            return None
        self.count = 0
        self.since = None
        if self.alarmed:
            self.alarmed = False
            return CLEARED
        return None


class Rotation(Protocol):
    """Takes a deployment out of rotation for a while, and puts it back."""

    def take_out(self, deployment: str, hold_s: float) -> None: ...

    def put_back(self, deployment: str) -> None: ...


class BreakerRotation:
    """Out of rotation by way of the gateway's circuit breakers: an open breaker is skipped by
    every route. The hold is renewed at each failing check and lapses by itself if the watch
    stops, so a dead watcher cannot keep a deployment out for good."""

    def __init__(self, breakers: Mapping[str, Breaker]) -> None:
        self.breakers = breakers

    def take_out(self, deployment: str, hold_s: float) -> None:
        breaker = self.breakers.get(deployment)
        if breaker is not None:
            breaker.open_until = max(breaker.open_until, time.monotonic() + hold_s)

    def put_back(self, deployment: str) -> None:
        breaker = self.breakers.get(deployment)
        if breaker is not None:
            breaker.record_success()


class WatchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.checks = Counter(
            "turnout_fingerprint_checks",
            "Fingerprint checks by result (unchanged, changed, error)",
            ["deployment", "result"],
            registry=r,
        )
        self.p_value = Gauge(
            "turnout_fingerprint_min_p_value",
            "Smallest Holm-adjusted p-value of the last fingerprint check",
            ["deployment"],
            registry=r,
        )
        self.alarm = Gauge(
            "turnout_fingerprint_alarm",
            "1 while a deployment's behaviour is judged changed (two rejections in a row)",
            ["deployment"],
            registry=r,
        )
        self.alarms = Counter(
            "turnout_fingerprint_alarms",
            "Alarms raised: by scheduled checks (raised) or by passive monitoring (passive)",
            ["deployment", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "turnout_fingerprint_probe_cost_usd",
            "What probing has cost",
            ["deployment"],
            registry=r,
        )
