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
    """Consecutive-failure circuit breaker; after its rest, traffic probes again (half-open)."""

    cooldown: Cooldown
    failures: int = 0
    open_until: float = 0.0

    def available(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.open_until

    def remaining_s(self, now: float | None = None) -> float:
        return max(0.0, self.open_until - (time.monotonic() if now is None else now))

    def record_failure(self, now: float | None = None) -> bool:
        """Count a failure; True when this one opened the breaker."""
        self.failures += 1
        if self.failures >= self.cooldown.failures:
            self.open_until = (time.monotonic() if now is None else now) + self.cooldown.seconds
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.open_until = 0.0


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
