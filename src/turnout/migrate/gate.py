"""The migration gate: is the candidate no worse than the old model, within a stated margin?

Pure statistics, no I/O; used by the offline report and by a live canary that re-evaluates as
records arrive. Every check answers PASS (non-inferiority shown), FAIL (a degradation beyond the
margin shown) or INCONCLUSIVE (not enough evidence either way), each at one-sided level α.

Pass/fail checks on the same requests (`paired_pass_rate`): the difference of pass rates
d = p_candidate − p_old, tolerated drop Δ (the margin).
- FAIL tests H0: d ≥ −Δ against d < −Δ; PASS tests H0: d ≤ −Δ against d > −Δ.
- With Δ = 0 both are exact McNemar tests: conditional on the b + c discordant pairs, the
  candidate's losses b are Binomial(b + c, ½) under H0.
- With Δ > 0: Tango's (1998) score test for a paired difference, with the restricted maximum
  likelihood estimate in closed form; asymptotic.
- The interval is Tango's score interval at level 1 − 2α (so its bounds match the one-sided tests).

Continuous metrics (`continuous`): latency, cost, length, on a log scale, so the shift is a ratio
candidate/old and the margin a tolerated relative degradation r (ratio 1 + r, or 1 − r when lower is
worse). Paired data use Wilcoxon's signed-rank test and the Hodges–Lehmann estimate (median of the
Walsh averages); unpaired data (a live canary) the Mann–Whitney test and the two-sample
Hodges–Lehmann estimate (median of all differences). Both with their distribution-free intervals
(order statistics at the exact or normal-approximate critical value, level 1 − 2α). Exact null
distributions below 50 observations without ties, normal with tie and continuity correction above.

`turnout.migrate.family` combines several verdicts into the gate's one answer.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from turnout.fingerprint.permutation import average_ranks
from turnout.migrate import _nulls

_N = NormalDist()
Direction = Literal["higher_is_worse", "lower_is_worse", "two_sided"]


class Outcome(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(slots=True)
class Verdict:
    """One check's answer and everything it rests on."""

    check: str  # what was compared, e.g. "semantic_match", "latency_s"
    outcome: Outcome
    test: str  # the statistical test(s) used
    estimate: float  # pass-rate difference (candidate − old), or ratio candidate/old
    ci: tuple[float, float]  # at level 1 − 2α, matching the one-sided tests
    margin: float  # tolerated drop in pass rate, or tolerated relative degradation
    margin_kind: Literal["pass-rate difference", "relative"]
    alpha: float  # one-sided level of each test
    n: int  # pairs (paired) or the smaller sample (unpaired)
    p_fail: float  # H0 "no worse than the margin"; small → FAIL
    p_pass: float  # H0 "worse by at least the margin"; small → PASS
    explanation: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def p_value(self) -> float:
        """The p-value of the decision taken (the smaller of the two when inconclusive)."""
        if self.outcome is Outcome.PASS:
            return self.p_pass
        if self.outcome is Outcome.FAIL:
            return self.p_fail
        return min(self.p_pass, self.p_fail)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["outcome"] = self.outcome.value
        out["ci"] = list(self.ci)
        out["p_value"] = self.p_value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        fields = {k: v for k, v in data.items() if k != "p_value"}
        fields["outcome"] = Outcome(fields["outcome"])
        fields["ci"] = tuple(fields["ci"])
        return cls(**fields)


def _decide(p_pass: float, p_fail: float, alpha: float) -> Outcome:
    if p_fail <= alpha:
        return Outcome.FAIL
    if p_pass <= alpha:
        return Outcome.PASS
    return Outcome.INCONCLUSIVE


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")


# ---------------------------------------------------------------- paired pass/fail


def binomial_upper(k: int, n: int) -> float:
    """P(X ≥ k) for X ~ Binomial(n, ½): the exact McNemar one-sided p-value."""
    if k <= 0:
        return 1.0
    return float(sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n)


def tango_z(b: int, c: int, n: int, delta: float) -> float:
    """Tango's score statistic for H0: p_old − p_candidate = delta, where b counts pairs the old
    model passed and the candidate failed, c the reverse, n all pairs."""
    w = -b - c + (2 * n - b + c) * delta
    q21 = (math.sqrt(max(0.0, w * w + 8 * n * c * delta * (1 - delta))) - w) / (4 * n)
    var = n * (2 * q21 + delta * (1 - delta))
    num = b - c - n * delta
    if var <= 0:
        return 0.0 if num == 0 else math.copysign(math.inf, num)
    return num / math.sqrt(var)


def score_interval(z_of: Callable[[float], float], est: float, level: float) -> tuple[float, float]:
    """The difference-of-rates interval that inverts a score test whose z decreases in delta."""
    z = _N.inv_cdf(1 - (1 - level) / 2)

    def root(target: float, lo: float, hi: float) -> float:
        for _ in range(100):
            mid = (lo + hi) / 2
            if z_of(mid) > target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    lower = -1.0 if est <= -1 else root(z, -1 + 1e-12, est)
    upper = 1.0 if est >= 1 else root(-z, est, 1 - 1e-12)
    return lower, upper


def tango_interval(b: int, c: int, n: int, level: float) -> tuple[float, float]:
    """Tango's score interval for p_old − p_candidate, by inverting the test (bisection)."""
    return score_interval(lambda delta: tango_z(b, c, n, delta), (b - c) / n, level)


def paired_pass_rate(
    old: Sequence[bool] | np.ndarray,
    candidate: Sequence[bool] | np.ndarray,
    *,
    check: str,
    margin: float = 0.05,
    alpha: float = 0.05,
) -> Verdict:
    """Non-inferiority of the candidate's pass rate on the same requests, pair by pair."""
    check_alpha(alpha)
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    o = np.asarray(old, dtype=bool)
    c_ = np.asarray(candidate, dtype=bool)
    if o.shape != c_.shape or o.ndim != 1:
        raise ValueError(f"need two equal-length vectors of outcomes, got {o.shape}, {c_.shape}")
    n = len(o)
    b = int(np.sum(o & ~c_))  # the candidate's losses
    c = int(np.sum(~o & c_))  # its wins
    detail: dict[str, Any] = {
        "losses": b,
        "wins": c,
        "old_passes": int(o.sum()),
        "candidate_passes": int(c_.sum()),
    }
    if n == 0:
        return Verdict(
            check, Outcome.INCONCLUSIVE, "none (no pairs)", 0.0, (-1.0, 1.0), margin,
            "pass-rate difference", alpha, 0, 1.0, 1.0, f"{check}: no pairs to compare", detail,
        )  # fmt: skip
    if margin == 0:
        test = "exact McNemar (one-sided, conditional binomial on discordant pairs)"
        p_fail = binomial_upper(b, b + c)
        p_pass = binomial_upper(c, b + c)
    else:
        test = "Tango score test for a paired difference (one-sided)"
        z = tango_z(b, c, n, margin)
        p_fail = 1 - _N.cdf(z)
        p_pass = _N.cdf(z)
    detail["mcnemar_two_sided_p"] = min(1.0, 2 * binomial_upper(max(b, c), b + c))
    lo, hi = tango_interval(b, c, n, 1 - 2 * alpha)
    estimate = (c - b) / n
    outcome = _decide(p_pass, p_fail, alpha)
    why = {
        Outcome.PASS: f"no worse than −{margin:.3g} (lower bound {-hi:+.3f})",
        Outcome.FAIL: f"worse by more than {margin:.3g} (upper bound {-lo:+.3f})",
        Outcome.INCONCLUSIVE: f"interval [{-hi:+.3f}, {-lo:+.3f}] straddles −{margin:.3g}",
    }[outcome]
    explanation = (
        f"{check}: pass rate {c_.mean():.1%} vs {o.mean():.1%} ({estimate:+.3f}; {b} lost, "
        f"{c} gained of {n} pairs); {why} at α={alpha:g}"
    )
    return Verdict(
        check, outcome, test, estimate, (-hi, -lo), margin, "pass-rate difference", alpha, n,
        p_fail, p_pass, explanation, detail,
    )  # fmt: skip


# ---------------------------------------------------------------- continuous metrics


def signed_rank_p(d: np.ndarray) -> float:
    """One-sided Wilcoxon signed-rank p-value for H1: the d are shifted above 0 (zeros dropped)."""
    d = d[d != 0]
    n = len(d)
    if n == 0:
        return 1.0
    ranks = average_ranks(np.abs(d)) + 1
    t_plus = float(ranks[d > 0].sum())
    ties = len(np.unique(np.abs(d))) < n
    if n < _nulls.EXACT_BELOW and not ties:
        return _nulls.upper_tail(_nulls.signed_rank_counts(n), t_plus)
    _, counts = np.unique(np.abs(d), return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - float(np.sum(counts**3 - counts)) / 48
    if var <= 0:
        return 1.0
    z = (t_plus - n * (n + 1) / 4 - 0.5) / math.sqrt(var)
    return 1 - _N.cdf(z)


def rank_sum_p(old: np.ndarray, new: np.ndarray) -> float:
    """One-sided Mann–Whitney p-value for H1: `new` is shifted above `old`."""
    m, n = len(new), len(old)
    if m == 0 or n == 0:
        return 1.0
    pooled = np.r_[new, old]
    ranks = average_ranks(pooled) + 1
    u = float(ranks[:m].sum()) - m * (m + 1) / 2
    ties = len(np.unique(pooled)) < m + n
    if m < _nulls.EXACT_BELOW and n < _nulls.EXACT_BELOW and not ties:
        return _nulls.upper_tail(_nulls.rank_sum_counts(m, n), u)
    _, counts = np.unique(pooled, return_counts=True)
    big = m + n
    var = m * n / 12 * ((big + 1) - float(np.sum(counts**3 - counts)) / (big * (big - 1)))
    if var <= 0:
        return 1.0
    z = (u - m * n / 2 - 0.5) / math.sqrt(var)
    return 1 - _N.cdf(z)


def _critical(total: int, exact: tuple[int, ...] | None, sd: float, tail: float) -> int:
    if exact is not None:
        return _nulls.lower_critical(exact, tail)
    return max(0, math.floor(total / 2 - _N.inv_cdf(1 - tail) * sd))


def hodges_lehmann_paired(d: np.ndarray, level: float) -> tuple[float, float, float]:
    """(estimate, lower, upper): the median of the Walsh averages and its signed-rank interval."""
    n = len(d)
    s = np.sort(d)
    total = n * (n + 1) // 2
    count = _nulls.walsh_count(s)
    lo_v, hi_v = float(s[0]), float(s[-1])
    est = (
        _nulls.kth_smallest(count, (total + 1) // 2, lo_v, hi_v)
        + _nulls.kth_smallest(count, total // 2 + 1, lo_v, hi_v)
    ) / 2
    exact = _nulls.signed_rank_counts(n) if n < _nulls.EXACT_BELOW else None
    sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    k = _critical(total, exact, sd, (1 - level) / 2)
    if k < 1:
        return est, -math.inf, math.inf
    return (
        est,
        _nulls.kth_smallest(count, k, lo_v, hi_v),
        _nulls.kth_smallest(count, total + 1 - k, lo_v, hi_v),
    )


def hodges_lehmann_two_sample(
    old: np.ndarray, new: np.ndarray, level: float
) -> tuple[float, float, float]:
    """(estimate, lower, upper) of the shift new − old: median of all differences, with the
    Mann–Whitney interval."""
    m, n = len(new), len(old)
    total = m * n
    count = _nulls.difference_count(old, new)
    lo_v, hi_v = float(new.min() - old.max()), float(new.max() - old.min())
    est = (
        _nulls.kth_smallest(count, (total + 1) // 2, lo_v, hi_v)
        + _nulls.kth_smallest(count, total // 2 + 1, lo_v, hi_v)
    ) / 2
    small = m < _nulls.EXACT_BELOW and n < _nulls.EXACT_BELOW
    exact = _nulls.rank_sum_counts(m, n) if small else None
    sd = math.sqrt(m * n * (m + n + 1) / 12)
    k = _critical(total, exact, sd, (1 - level) / 2)
    if k < 1:
        return est, -math.inf, math.inf
    return (
        est,
        _nulls.kth_smallest(count, k, lo_v, hi_v),
        _nulls.kth_smallest(count, total + 1 - k, lo_v, hi_v),
    )


def continuous(
    old: Sequence[float] | np.ndarray,
    candidate: Sequence[float] | np.ndarray,
    *,
    check: str,
    margin: float = 0.10,
    alpha: float = 0.05,
    paired: bool = True,
    direction: Direction = "higher_is_worse",
    offset: float = 0.0,
) -> Verdict:
    """Non-inferiority of a positive metric within a tolerated relative degradation `margin`.

    Values are compared as log(x + offset) (offset > 0 admits zeros, e.g. 1 for lengths)."""
    check_alpha(alpha)
    if not 0 < margin < (1 if direction != "higher_is_worse" else math.inf):
        raise ValueError(f"margin must be a positive relative change, got {margin}")
    o = np.asarray(old, dtype=float)
    c = np.asarray(candidate, dtype=float)
    if paired and o.shape != c.shape:
        raise ValueError(f"paired samples need equal lengths, got {len(o)} and {len(c)}")
    n = len(o) if paired else min(len(o), len(c))
    kind = "Wilcoxon signed-rank" if paired else "Mann–Whitney"
    test = f"{kind} with Hodges–Lehmann interval, log scale (one-sided)"
    if n == 0:
        return Verdict(
            check, Outcome.INCONCLUSIVE, test, 1.0, (0.0, math.inf), margin, "relative", alpha,
            0, 1.0, 1.0, f"{check}: no data to compare",
        )  # fmt: skip
    if np.any(o + offset <= 0) or np.any(c + offset <= 0):
        raise ValueError(f"{check}: values must be > {-offset} on the log scale")
    lo_, lc = np.log(o + offset), np.log(c + offset)
    up, down = math.log1p(margin), math.log1p(-margin) if margin < 1 else -math.inf

    def p_above(shift: float) -> float:
        """One-sided p for H1: the candidate's log-shift exceeds `shift`."""
        if paired:
            return signed_rank_p(lc - lo_ - shift)
        return rank_sum_p(lo_, lc - shift)

    def p_below(shift: float) -> float:
        if paired:
            return signed_rank_p(lo_ - lc + shift)
        return rank_sum_p(lc - shift, lo_)

    if direction == "higher_is_worse":
        p_fail, p_pass = p_above(up), p_below(up)
    elif direction == "lower_is_worse":
        p_fail, p_pass = p_below(down), p_above(down)
    else:  # both ways: FAIL at α/2 a side; PASS by two one-sided tests (equivalence)
        p_fail = min(1.0, 2 * min(p_above(up), p_below(down)))
        p_pass = max(p_below(up), p_above(down))
    level = 1 - 2 * alpha
    if paired:
        est, lo, hi = hodges_lehmann_paired(lc - lo_, level)
    else:
        est, lo, hi = hodges_lehmann_two_sample(lo_, lc, level)
    ratio, ci = math.exp(est), (math.exp(lo), math.exp(hi))
    outcome = _decide(p_pass, p_fail, alpha)
    bound = {
        "higher_is_worse": f"≤ ×{1 + margin:.3g}",
        "lower_is_worse": f"≥ ×{1 - margin:.3g}",
        "two_sided": f"within ×{1 - margin:.3g}..×{1 + margin:.3g}",
    }[direction]
    verb = {
        Outcome.PASS: "shown",
        Outcome.FAIL: "violated",
        Outcome.INCONCLUSIVE: "not settled",
    }[outcome]
    explanation = (
        f"{check}: candidate/old ×{ratio:.3g} (interval ×{ci[0]:.3g}..×{ci[1]:.3g}, {n} "
        f"{'pairs' if paired else 'per arm'}); tolerance {bound} {verb} at α={alpha:g}"
    )
    detail = {"direction": direction, "paired": paired, "n_old": len(o), "n_candidate": len(c)}
    return Verdict(
        check, outcome, test, ratio, ci, margin, "relative", alpha, n, p_fail, p_pass,
        explanation, detail,
    )  # fmt: skip
