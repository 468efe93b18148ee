"""Statistics for verdicts on non-deterministic behaviour: pure functions, no I/O.

- Wilson score interval for a pass rate (good coverage at small n and near 0 or 1, unlike Wald).
- Wald's sequential probability ratio test between an acceptable rate and a regression.
- pass^k as τ-bench defines it: per task C(c, k) / C(n, k), averaged over tasks.
- Newcombe's hybrid score interval for the difference of two pass rates (baseline comparison).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any


class Verdict(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


def z_value(confidence: float) -> float:
    """The two-sided normal quantile for `confidence` (1.96 for 0.95)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion; (0, 1) when there is no data."""
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 ≤ successes ≤ n, got {successes}/{n}")
    if n == 0:
        return (0.0, 1.0)
    z = z_value(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Clamp exact ends: at p = 0 (or 1) the bound is 0 (or 1) up to rounding.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def threshold_verdict(
    successes: int, n: int, threshold: float, confidence: float = 0.95
) -> Verdict:
    """PASS when the whole interval is at or above `threshold`, FAIL when it is below."""
    lo, hi = wilson_interval(successes, n, confidence)
    if lo >= threshold:
        return Verdict.PASS
    if hi < threshold:
        return Verdict.FAIL
    return Verdict.INCONCLUSIVE


@dataclass(frozen=True, slots=True)
class SPRT:
    """Wald's SPRT of H0: p = p0 (acceptable) against H1: p = p1 (a regression), p1 < p0.

    `alpha` is the chance of flagging a regression when the rate is p0, `beta` the chance of
    missing one when it is p1. The log-likelihood ratio depends only on the counts.
    """

    p0: float = 0.9
    p1: float = 0.7
    alpha: float = 0.05
    beta: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.p1 < self.p0 < 1:
            raise ValueError(f"need 0 < p1 < p0 < 1, got p0={self.p0}, p1={self.p1}")
        if not (0 < self.alpha < 1 and 0 < self.beta < 1):
            raise ValueError("alpha and beta must be in (0, 1)")

    @property
    def upper(self) -> float:
        """Crossing it accepts H1: a regression."""
        return math.log((1 - self.beta) / self.alpha)

    @property
    def lower(self) -> float:
        """Crossing it accepts H0: the rate is acceptable."""
        return math.log(self.beta / (1 - self.alpha))

    def llr(self, successes: int, n: int) -> float:
        win = math.log(self.p1 / self.p0)
        loss = math.log((1 - self.p1) / (1 - self.p0))
        return successes * win + (n - successes) * loss

    def decide(self, successes: int, n: int) -> Verdict | None:
        """PASS (acceptable), FAIL (regression), or None: keep sampling."""
        value = self.llr(successes, n)
        if value >= self.upper:
            return Verdict.FAIL
        if value <= self.lower:
            return Verdict.PASS
        return None

    def run(self, outcomes: Iterable[bool], max_trials: int) -> tuple[Verdict, int, int]:
        """Consume outcomes until a decision or `max_trials`: (verdict, successes, trials)."""
        successes = n = 0
        for ok in outcomes:
            n += 1
            successes += bool(ok)
            decided = self.decide(successes, n)
            if decided is not None:
                return decided, successes, n
            if n >= max_trials:
                break
        return Verdict.INCONCLUSIVE, successes, n

    def as_json(self) -> dict[str, float]:
        return {"p0": self.p0, "p1": self.p1, "alpha": self.alpha, "beta": self.beta}


def fixed_sample_size(p0: float, p1: float, alpha: float, beta: float) -> int:
    """Trials a fixed-size one-sided test needs to tell p0 from p1 with these errors
    (normal approximation): the number SPRT's average is compared with."""
    za, zb = NormalDist().inv_cdf(1 - alpha), NormalDist().inv_cdf(1 - beta)
    root = za * math.sqrt(p0 * (1 - p0)) + zb * math.sqrt(p1 * (1 - p1))
    return math.ceil((root / (p0 - p1)) ** 2)


def exact_fixed_sample_size(p0: float, p1: float, alpha: float, beta: float) -> tuple[int, int]:
    """The smallest n (and its critical count c) of an exact binomial test that says
    "regression" when passes ≤ c, with P(≤c | p0) ≤ alpha and P(>c | p1) ≤ beta."""
    for n in range(1, 10_000):
        cdf0 = cdf1 = 0.0
        for c in range(n + 1):
            cdf0 += math.comb(n, c) * p0**c * (1 - p0) ** (n - c)
            cdf1 += math.comb(n, c) * p1**c * (1 - p1) ** (n - c)
            if cdf0 > alpha:
                break
            if 1 - cdf1 <= beta:
                return n, c
    raise ValueError("no fixed sample size below 10,000 trials")


def pass_hat_k(results: Mapping[Any, Sequence[bool]], k: int) -> float:
    """τ-bench's pass^k: for each task, C(c, k) / C(n, k) with c passes of n trials; the mean.

    The chance that k trials drawn (without replacement) from a task's n all pass, averaged.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not results:
        raise ValueError("pass^k needs at least one task")
    total = 0.0
    for task, trials in results.items():
        n, c = len(trials), sum(bool(t) for t in trials)
        if n < k:
            raise ValueError(f"task {task!r} has {n} trials; pass^{k} needs at least {k}")
        total += math.comb(c, k) / math.comb(n, k)
    return total / len(results)


class Change(enum.StrEnum):
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    NO_CHANGE = "no significant change"


@dataclass(frozen=True, slots=True)
class Comparison:
    """Current against baseline: the difference of pass rates and its interval."""

    current: tuple[int, int]
    baseline: tuple[int, int]
    difference: float
    interval: tuple[float, float]
    confidence: float
    change: Change

    def as_json(self) -> dict[str, Any]:
        return {
            "current": list(self.current),
            "baseline": list(self.baseline),
            "difference": self.difference,
            "interval": list(self.interval),
            "confidence": self.confidence,
            "change": self.change.value,
        }


def difference_interval(
    s1: int, n1: int, s2: int, n2: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 − p2 (his method 10), built from the two
    Wilson intervals; sound at small n where the Wald interval is not."""
    if n1 == 0 or n2 == 0:
        return (-1.0, 1.0)
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson_interval(s1, n1, confidence)
    l2, u2 = wilson_interval(s2, n2, confidence)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (max(-1.0, lo), min(1.0, hi))


def compare(
    current: tuple[int, int],
    baseline: tuple[int, int],
    confidence: float = 0.95,
    margin: float = 0.0,
) -> Comparison:
    """A regression only when the whole interval of (current − baseline) lies below −margin;
    an interval that straddles it is noise at this many trials."""
    (s1, n1), (s2, n2) = current, baseline
    lo, hi = difference_interval(s1, n1, s2, n2, confidence)
    if hi < -margin:
        change = Change.REGRESSION
    elif lo > margin:
        change = Change.IMPROVEMENT
    else:
        change = Change.NO_CHANGE
    d = (s1 / n1 if n1 else 0.0) - (s2 / n2 if n2 else 0.0)
    return Comparison(current, baseline, d, (lo, hi), confidence, change)
