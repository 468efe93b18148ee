"""The canary's unpaired pass-rate check: Farrington–Manning's score test and interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from turnout.migrate.gate import Outcome
from turnout.migrate.unpaired import fm_interval, fm_z, restricted_mle, unpaired_pass_rate


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "delta"),
    [(90, 100, 80, 120, 0.05), (50, 60, 3, 20, 0.1), (30, 40, 35, 40, -0.1), (7, 9, 9, 9, 0.2)],
)
def test_the_restricted_estimate_maximises_the_likelihood_under_the_null(
    x1: int, n1: int, x2: int, n2: int, delta: float
) -> None:
    r1, r2 = restricted_mle(x1, n1, x2, n2, delta)
    assert r1 - r2 == pytest.approx(delta)
    grid = np.linspace(max(delta, 0) + 1e-6, min(1, 1 + delta) - 1e-6, 400_001)
    other = grid - delta
    loglik = (
        x1 * np.log(grid) + (n1 - x1) * np.log1p(-grid)
        + x2 * np.log(other) + (n2 - x2) * np.log1p(-other)
    )  # fmt: skip
    assert r1 == pytest.approx(float(grid[np.argmax(loglik)]), abs=1e-4)


def test_at_zero_margin_it_is_the_pooled_two_proportion_z_test() -> None:
    x1, n1, x2, n2 = 45, 60, 30, 50
    pooled = (x1 + x2) / (n1 + n2)
    z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert fm_z(x1, n1, x2, n2, 0.0) == pytest.approx(z)


def test_the_interval_holds_the_estimate_and_inverts_the_test() -> None:
    lo, hi = fm_interval(80, 100, 70, 100, 0.90)
    assert lo < 0.1 < hi
    assert fm_z(80, 100, 70, 100, lo) == pytest.approx(1.6449, abs=1e-3)
    assert fm_z(80, 100, 70, 100, hi) == pytest.approx(-1.6449, abs=1e-3)


def test_verdicts_pass_fail_and_inconclusive() -> None:
    good = unpaired_pass_rate([True] * 300, [True] * 100, check="success", margin=0.05)
    assert good.outcome is Outcome.PASS and good.p_pass < 0.05
    bad = unpaired_pass_rate([True] * 300, [True] * 10 + [False] * 5, check="success")
    assert bad.outcome is Outcome.FAIL and bad.estimate == pytest.approx(-1 / 3)
    assert bad.ci[1] < -0.05  # the whole interval beyond the margin
    thin = unpaired_pass_rate([True] * 300, [True] * 20, check="success", margin=0.05)
    assert thin.outcome is Outcome.INCONCLUSIVE
    empty = unpaired_pass_rate([True] * 3, [], check="success")
    assert empty.outcome is Outcome.INCONCLUSIVE and empty.n == 0


def test_under_the_null_it_fails_no_more_often_than_alpha() -> None:
    """Candidate exactly `margin` worse: the PASS test may succeed at most ~α of the time."""
    rng = np.random.default_rng(3)
    passes = 0
    trials = 2000
    for _ in range(trials):
        old = rng.random(200) < 0.95
        cand = rng.random(200) < 0.90
        passes += unpaired_pass_rate(old, cand, check="s", margin=0.05).outcome is Outcome.PASS
    assert passes / trials <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)
