"""The per-deployment circuit breaker."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from turnout.config import Cooldown

HISTORY = 50  # transitions a breaker remembers


@dataclass(slots=True)
class Breaker:
    """Consecutive-failure circuit breaker with a half-open probe.

    After `cooldown.failures` failures the deployment rests `cooldown.probe_after_s`; then exactly
    one request probes it (half-open) while the others keep away: a success closes the breaker, a
    failure rests it again, twice as long each time, up to `cooldown.seconds`. Only failures that
    say the deployment is unhealthy are counted, and the journey counts at most one per request,
    so no single request can open it for everyone.
    """

    cooldown: Cooldown
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False  # a half-open probe is in flight
    rests: int = 0  # rests in a row without a success: each doubles the next one
    # Its last transitions, (wall time, state, why), for the console: this process's only.
    history: deque[tuple[float, str, str]] = field(
        default_factory=lambda: deque(maxlen=HISTORY), compare=False, repr=False
    )
    # Told each time it opens (rest in seconds, why): a fleet rests the deployment everywhere.
    on_open: Callable[[float, str], None] | None = field(default=None, compare=False, repr=False)

    def _now(self, now: float | None) -> float:
        return time.monotonic() if now is None else now

    def available(self, now: float | None = None) -> bool:
        return self._now(now) >= self.open_until and not self.probing

    def half_open(self, now: float | None = None) -> bool:
        return self.open_until > 0 and self._now(now) >= self.open_until

    def remaining_s(self, now: float | None = None) -> float:
        return max(0.0, self.open_until - self._now(now))

    def attempt_started(self, now: float | None = None) -> bool:
        """An attempt goes to the deployment; True when it is the half-open probe."""
        if self.half_open(now) and not self.probing:
            self.probing = True
            self.history.append((time.time(), "half-open", "a request probes it"))
            return True
        return False

    def probe_ended(self) -> None:
        """The probe ended without a verdict on health (the client left): let another probe."""
        self.probing = False

    def record_failure(self, now: float | None = None, *, probe: bool = False) -> bool:
        """Count a failure; True when this one opened the breaker (or re-opened it)."""
        self.failures += 1
        if probe:
            self.probing = False
        if probe or self.failures >= self.cooldown.failures:
            c = self.cooldown
            rest = min(c.seconds, min(c.probe_after_s, c.seconds) * 2**self.rests)
            self.rests += 1
            self.open_until = self._now(now) + rest
            n = self.failures
            why = "the probe failed" if probe else f"{n} failure{'s' * (n != 1)} in a row"
            self.history.append((time.time(), "open", f"{why}; rests {rest:g} s"))
            if self.on_open is not None:
                self.on_open(rest, why)
            return True
        return False

    def record_success(self) -> None:
        if self.open_until > 0:
            self.history.append((time.time(), "closed", "a request succeeded"))
        self.failures = 0
        self.open_until = 0.0
        self.probing = False
        self.rests = 0
