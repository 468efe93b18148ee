"""The unpaired pass-rate check a live canary needs, in the gate's terms (`gate.Verdict`).

A canary sends each request to one arm, so there are no pairs: the candidate's and the old
deployments' pass rates are two independent binomials. Farrington–Manning's score test for a
difference of proportions is the unpaired counterpart of the gate's Tango test: the same margin
(a tolerated drop Δ in pass rate), the same one-sided PASS/FAIL tests at α, and its score interval
at level 1 − 2α.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from turnout.migrate.gate import Outcome, Verdict, check_alpha, score_interval

_N = NormalDist()


def restricted_mle(x1: int, n1: int, x2: int, n2: int, delta: float) -> tuple[float, float]:
    """The pass rates (p1, p2) that maximise the likelihood under p1 − p2 = delta (closed form)."""
    p1, p2 = x1 / n1, x2 / n2
    theta = n2 / n1
    a = 1 + theta
    b = -(1 + theta + p1 + theta * p2 + delta * (theta + 2))
    c = delta * delta + delta * (2 * p1 + theta + 1) + p1 + theta * p2
    d = -p1 * delta * (1 + delta)
    v = b**3 / (3 * a) ** 3 - b * c / (6 * a * a) + d / (2 * a)
    root = b * b / (3 * a) ** 2 - c / (3 * a)
    u = math.copysign(math.sqrt(max(root, 0.0)), v)
    if u == 0:
        r1 = -b / (3 * a)
    else:
        w = (math.pi + math.acos(max(-1.0, min(1.0, v / u**3)))) / 3
        r1 = 2 * u * math.cos(w) - b / (3 * a)
    r1 = min(1.0, max(delta, 0.0, r1))
    return r1, min(1.0, max(0.0, r1 - delta))


def fm_z(x1: int, n1: int, x2: int, n2: int, delta: float) -> float:
    """Score statistic for H0: p1 − p2 = delta; grows as the data put p1 − p2 above delta."""
    r1, r2 = restricted_mle(x1, n1, x2, n2, delta)
    var = r1 * (1 - r1) / n1 + r2 * (1 - r2) / n2
    num = x1 / n1 - x2 / n2 - delta
    if var <= 0:
        return 0.0 if abs(num) < 1e-12 else math.copysign(math.inf, num)
    return num / math.sqrt(var)


def fm_interval(x1: int, n1: int, x2: int, n2: int, level: float) -> tuple[float, float]:
    """Score interval for p1 − p2, by inverting the test (z decreases in delta)."""
    return score_interval(lambda delta: fm_z(x1, n1, x2, n2, delta), x1 / n1 - x2 / n2, level)


def unpaired_pass_rate(
    old: Sequence[bool] | np.ndarray,
    candidate: Sequence[bool] | np.ndarray,
    *,
    check: str,
    margin: float = 0.05,
    alpha: float = 0.05,
) -> Verdict:
    """Non-inferiority of the candidate's pass rate, each request on one arm only."""
    check_alpha(alpha)
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    o = np.asarray(old, dtype=bool)
    c = np.asarray(candidate, dtype=bool)
    n1, n2 = len(o), len(c)
    x1, x2 = int(o.sum()), int(c.sum())
    test = "Farrington–Manning score test for two independent proportions (one-sided)"
    detail = {"old_passes": x1, "old_n": n1, "candidate_passes": x2, "candidate_n": n2}
    if n1 == 0 or n2 == 0:
        return Verdict(
            check, Outcome.INCONCLUSIVE, test, 0.0, (-1.0, 1.0), margin, "pass-rate difference",
            alpha, 0, 1.0, 1.0, f"{check}: an arm has no requests yet", detail,
        )  # fmt: skip
    z = fm_z(x1, n1, x2, n2, margin)
    p_fail = 1 - _N.cdf(z)  # H0: the candidate is no worse than the margin
    p_pass = _N.cdf(z)  # H0: it is worse by at least the margin
    lo, hi = fm_interval(x1, n1, x2, n2, 1 - 2 * alpha)
    estimate = x2 / n2 - x1 / n1
    outcome = (
        Outcome.FAIL
        if p_fail <= alpha
        else Outcome.PASS
        if p_pass <= alpha
        else Outcome.INCONCLUSIVE
    )
    why = {
        Outcome.PASS: f"no worse than −{margin:.3g} (lower bound {-hi:+.3f})",
        Outcome.FAIL: f"worse by more than {margin:.3g} (upper bound {-lo:+.3f})",
        Outcome.INCONCLUSIVE: f"interval [{-hi:+.3f}, {-lo:+.3f}] straddles −{margin:.3g}",
    }[outcome]
    explanation = (
        f"{check}: pass rate {x2 / n2:.1%} of {n2} vs {x1 / n1:.1%} of {n1} ({estimate:+.3f}); "
        f"{why} at α={alpha:g}"
    )
    return Verdict(
        check, outcome, test, estimate, (-hi, -lo), margin, "pass-rate difference", alpha,
        min(n1, n2), p_fail, p_pass, explanation, detail,
    )  # fmt: skip
