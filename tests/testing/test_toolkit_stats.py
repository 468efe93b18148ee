"""Tier 3's arithmetic: intervals, SPRT, pass^k and baseline comparison, checked against
published values."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import pytest

from turnout.testing.stats import (
    SPRT,
    Change,
    Verdict,
    compare,
    difference_interval,
    exact_fixed_sample_size,
    fixed_sample_size,
    pass_hat_k,
    threshold_verdict,
    wilson_interval,
)

# Public data, shipped with the tests; data/README.md names its source.
FIXTURE = Path(__file__).parent / "data" / "taubench_gpt4o_airline_rewards.json"


def test_pass_hat_k_reproduces_tau_bench_published_values() -> None:
    rows = json.loads(FIXTURE.read_text())  # a missing fixture fails the test, never skips it
    tasks: dict[int, list[bool]] = defaultdict(list)
    for task, _trial, reward in rows:
        tasks[task].append(abs(reward - 1) < 1e-6)
    assert len(tasks) == 50 and all(len(t) == 4 for t in tasks.values())
    got = [round(pass_hat_k(tasks, k), 3) for k in (1, 2, 3, 4)]
    assert got == [0.420, 0.273, 0.220, 0.200]


def test_pass_hat_k_is_the_chance_that_k_draws_all_pass() -> None:
    assert pass_hat_k({"t": [True, True, False, False]}, 2) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="needs at least 3"):
        pass_hat_k({"t": [True, False]}, 3)


@pytest.mark.parametrize(
    ("s", "n", "lo", "hi"),
    [
        (8, 10, 0.4902, 0.9433),  # Newcombe (1998), Table I
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),  # Agresti & Coull's textbook example, 95%
    ],
)
def test_wilson_interval_matches_published_values(s: int, n: int, lo: float, hi: float) -> None:
    got = wilson_interval(s, n, 0.95)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_threshold_verdicts_need_the_whole_interval_on_one_side() -> None:
    assert threshold_verdict(20, 20, 0.8) is Verdict.PASS  # [0.84, 1]
    assert threshold_verdict(10, 20, 0.8) is Verdict.FAIL  # [0.30, 0.70]
    assert threshold_verdict(17, 20, 0.8) is Verdict.INCONCLUSIVE  # [0.64, 0.95]


def test_newcombe_difference_interval_matches_his_worked_example() -> None:
    # Newcombe (1998), method 10, example (a): 56/70 vs 48/80 → 0.0524 to 0.3339.
    assert difference_interval(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)


def test_baseline_comparison_tells_a_regression_from_noise() -> None:
    assert compare((12, 20), (19, 20)).change is Change.REGRESSION
    assert compare((17, 20), (19, 20)).change is Change.NO_CHANGE  # could be noise at n = 20
    assert compare((19, 20), (8, 20)).change is Change.IMPROVEMENT
    assert compare((170, 200), (190, 200)).change is Change.REGRESSION  # same rates, more data


def test_sprt_boundaries_and_decisions() -> None:
    s = SPRT(0.9, 0.7, 0.05, 0.05)
    assert s.upper == pytest.approx(2.944, abs=1e-3) and s.lower == pytest.approx(-2.944, abs=1e-3)
    assert s.run([True] * 100, 100)[::2] == (Verdict.PASS, 12)  # 12 straight passes suffice
    assert s.run([False] * 100, 100)[::2] == (Verdict.FAIL, 3)
    assert s.run([True, False] * 50, 4)[0] is Verdict.INCONCLUSIVE
    with pytest.raises(ValueError):
        SPRT(0.7, 0.9)


def test_sprt_meets_its_error_rates_with_fewer_trials_than_a_fixed_test() -> None:
    rng = random.Random(7)
    s = SPRT(0.9, 0.7, 0.05, 0.05)

    def runs(p: float) -> list[tuple[Verdict, int, int]]:
        return [s.run(iter(lambda: rng.random() < p, None), 200) for _ in range(2000)]

    at_p0, at_p1 = runs(0.9), runs(0.7)
    mean_trials = sum(r[2] for r in at_p0) / len(at_p0)
    assert mean_trials <= 25
    assert sum(r[0] is Verdict.FAIL for r in at_p1) / len(at_p1) >= 0.95
    assert sum(r[0] is Verdict.FAIL for r in at_p0) / len(at_p0) <= 0.05
    assert fixed_sample_size(0.9, 0.7, 0.05, 0.05) == 39
    assert exact_fixed_sample_size(0.9, 0.7, 0.05, 0.05)[0] >= 39
