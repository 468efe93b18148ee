"""Pure pieces of lifecycle policy: backoff delays, the per-deployment breaker, budgets."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from turnout.config import Backoff, Budget, Cooldown
from turnout.lifecycle.run import Run


def backoff_delay(
    policy: Backoff, retry_number: int, retry_after_s: float | None, rng: random.Random
) -> float:
    """Full jitter: uniform in [0, min(max, base·2^k)]; Retry-After wins when present."""
    if retry_after_s is not None:
        return retry_after_s
    cap = min(policy.max_s, policy.base_s * (2**retry_number))
    return rng.uniform(0.0, cap)


@dataclass(slots=True)
class Breaker:
    """Consecutive-failure circuit breaker with a half-open probe.

    After `cooldown.failures` failures the deployment rests `cooldown.seconds`; then exactly one
    request probes it (half-open) while the others keep away: a success closes the breaker, a
    failure rests it again. Only failures that say the deployment is unhealthy are counted, and
    the journey counts at most one per request, so no single request can open it for everyone.
    """

    cooldown: Cooldown
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False  # a half-open probe is in flight

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
            self.open_until = self._now(now) + self.cooldown.seconds
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.open_until = 0.0
        self.probing = False


def budget_left(budget: Budget, run: Run) -> str | None:
    """None if another attempt fits the budget, else why not."""
    if budget.max_total_tokens is not None and run.total_tokens >= budget.max_total_tokens:
        return f"token budget spent: {run.total_tokens} of {budget.max_total_tokens} tokens"
    if budget.max_cost_usd is not None and run.cost_usd >= budget.max_cost_usd:
        return f"cost budget spent: ${run.cost_usd:.6f} of ${budget.max_cost_usd:.6f}"
    return None


def tokens_left(budget: Budget, run: Run) -> int | None:
    if budget.max_total_tokens is None:
        return None
    return budget.max_total_tokens - run.total_tokens
