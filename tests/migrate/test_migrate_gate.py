"""The gate's statistics against textbook values and their defining properties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from turnout.migrate import _nulls
from turnout.migrate.family import family
from turnout.migrate.gate import (
    Outcome,
    Verdict,
    binomial_upper,
    continuous,
    hodges_lehmann_paired,
    hodges_lehmann_two_sample,
    paired_pass_rate,
    rank_sum_p,
    signed_rank_p,
    tango_interval,
    tango_z,
)

# Hollander & Wolfe: Hamilton depression scale before (x) and after (y) tranquilizer, n = 9.
DEPRESSION_X = np.array([1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30])
DEPRESSION_Y = np.array([0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29])
# Hollander & Wolfe: permeability constants, 10 against 5.
PERM_X = np.array([0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46])
PERM_Y = np.array([1.15, 0.88, 0.90, 0.74, 1.21])


def outcomes(both: int, lost: int, gained: int, neither: int) -> tuple[list[bool], list[bool]]:
    old = [True] * both + [True] * lost + [False] * gained + [False] * neither
    new = [True] * both + [False] * lost + [True] * gained + [False] * neither
    return old, new


def test_exact_mcnemar_is_the_binomial_tail_on_discordant_pairs() -> None:
    assert binomial_upper(10, 12) == pytest.approx(79 / 4096)
    old, new = outcomes(30, 10, 2, 8)
    v = paired_pass_rate(old, new, check="task", margin=0.0)
    assert v.p_fail == pytest.approx(79 / 4096)
    assert v.detail["mcnemar_two_sided_p"] == pytest.approx(2 * 79 / 4096)
    assert v.outcome is Outcome.FAIL
    assert v.estimate == pytest.approx(-8 / 50)


def test_tango_at_zero_margin_is_mcnemars_z() -> None:
    # Agresti's presidential approval ratings: 150 switched to disapprove, 86 the other way.
    assert tango_z(150, 86, 1600, 0.0) == pytest.approx(64 / math.sqrt(236))
    assert tango_z(150, 86, 1600, 0.0) == pytest.approx(4.166, abs=1e-3)


def test_tango_restricted_mle_maximises_the_constrained_likelihood() -> None:
    b, c, n, delta = 12, 5, 80, 0.05
    grid = np.linspace(1e-6, (1 - delta) / 2 - 1e-6, 200_001)
    loglik = (
        b * np.log(grid + delta) + c * np.log(grid) + (n - b - c) * np.log(1 - 2 * grid - delta)
    )
    q = grid[np.argmax(loglik)]
    z = (b - c - n * delta) / math.sqrt(n * (2 * q + delta * (1 - delta)))
    assert tango_z(b, c, n, delta) == pytest.approx(z, abs=1e-4)


def test_tango_interval_inverts_the_test() -> None:
    lo, hi = tango_interval(12, 5, 80, 0.90)
    assert lo < 7 / 80 < hi
    assert tango_z(12, 5, 80, lo) == pytest.approx(1.6449, abs=1e-3)
    assert tango_z(12, 5, 80, hi) == pytest.approx(-1.6449, abs=1e-3)


def test_signed_rank_matches_the_textbook_p_value() -> None:
    # V = 40, one-sided p = 10/512 = 0.01953
    assert signed_rank_p(DEPRESSION_X - DEPRESSION_Y) == pytest.approx(10 / 512)


def test_mann_whitney_matches_the_textbook_p_value() -> None:
    # W = 35, one-sided p = 0.1272
    assert rank_sum_p(PERM_Y, PERM_X) == pytest.approx(0.1272, abs=5e-5)


def test_critical_values_match_the_tables() -> None:
    # two-sided 5%: signed rank n = 9 rejects at T ≤ 5; Mann–Whitney 10 vs 10 at U ≤ 23
    assert _nulls.lower_critical(_nulls.signed_rank_counts(9), 0.025) == 6
    assert _nulls.lower_critical(_nulls.rank_sum_counts(10, 10), 0.025) == 24
    assert sum(_nulls.rank_sum_counts(10, 5)) == math.comb(15, 5)


def test_hodges_lehmann_paired_is_order_statistics_of_walsh_averages() -> None:
    d = DEPRESSION_X - DEPRESSION_Y
    walsh = np.sort([(d[i] + d[j]) / 2 for i in range(9) for j in range(i, 9)])
    est, lo, hi = hodges_lehmann_paired(d, 0.95)
    assert est == pytest.approx(np.median(walsh))
    assert (lo, hi) == pytest.approx((walsh[5], walsh[39]))


def test_hodges_lehmann_two_sample_is_order_statistics_of_differences() -> None:
    diffs = np.sort((PERM_X[None, :] - PERM_Y[:, None]).ravel())
    est, lo, hi = hodges_lehmann_two_sample(PERM_Y, PERM_X, 0.90)
    assert est == pytest.approx(np.median(diffs))
    k = _nulls.lower_critical(_nulls.rank_sum_counts(10, 5), 0.05)
    assert (lo, hi) == pytest.approx((diffs[k - 1], diffs[50 - k]))


def test_identical_outcomes_pass_within_a_margin() -> None:
    old, new = outcomes(180, 0, 0, 20)
    v = paired_pass_rate(old, new, check="valid_json", margin=0.05)
    assert v.outcome is Outcome.PASS
    assert v.n == 200 and v.margin == 0.05 and v.alpha == 0.05
    assert "α=0.05" in v.explanation


def test_a_drop_beyond_the_margin_fails_and_a_small_one_is_tolerated() -> None:
    assert paired_pass_rate(*outcomes(100, 40, 5, 55), check="t").outcome is Outcome.FAIL
    small = paired_pass_rate(*outcomes(300, 4, 2, 94), check="t", margin=0.05)
    assert small.outcome is Outcome.PASS
    assert small.ci[0] > -0.05


def test_few_pairs_are_inconclusive() -> None:
    v = paired_pass_rate(*outcomes(6, 1, 1, 2), check="t", margin=0.05)
    assert v.outcome is Outcome.INCONCLUSIVE
    assert v.ci[0] < -0.05 < v.ci[1]


def test_the_null_rarely_fails() -> None:
    rng = np.random.default_rng(7)
    fails = 0
    for _ in range(400):
        old = rng.random(60) < 0.7
        new = np.where(rng.random(60) < 0.5, old, rng.random(60) < 0.7)
        fails += paired_pass_rate(old, new, check="t", margin=0.0).outcome is Outcome.FAIL
    assert fails / 400 <= 0.05


def test_a_slower_candidate_fails_latency_and_an_equal_one_passes() -> None:
    rng = np.random.default_rng(1)
    old = rng.lognormal(0, 0.3, 80)
    slow = continuous(old, old * 1.6 * rng.lognormal(0, 0.05, 80), check="latency_s")
    assert slow.outcome is Outcome.FAIL
    assert 1.5 < slow.estimate < 1.7 and slow.ci[0] > 1.1
    same = continuous(old, old * rng.lognormal(0, 0.05, 80), check="latency_s")
    assert same.outcome is Outcome.PASS
    assert same.ci[1] < 1.1


def test_unpaired_comparison_for_a_live_canary() -> None:
    rng = np.random.default_rng(2)
    old, new = rng.lognormal(0, 0.2, 300), rng.lognormal(0.4, 0.2, 200)
    v = continuous(old, new, check="latency_s", paired=False)
    assert v.outcome is Outcome.FAIL and v.n == 200
    assert v.ci[0] < math.exp(0.4) < v.ci[1]


def test_shorter_answers_fail_when_length_may_not_shrink() -> None:
    old = np.arange(20, 80, dtype=float)
    v = continuous(old, old * 0.5, check="length", direction="lower_is_worse", offset=1)
    assert v.outcome is Outcome.FAIL
    both = continuous(old, old * 0.5, check="length", direction="two_sided", offset=1)
    assert both.outcome is Outcome.FAIL
    same = continuous(old, old, check="length", direction="two_sided", offset=1)
    assert same.outcome is Outcome.PASS and same.estimate == pytest.approx(1.0)


def test_family_applies_holm_to_the_fail_p_values() -> None:
    bad = paired_pass_rate(*outcomes(100, 40, 5, 55), check="a", margin=0.0)
    borderline = paired_pass_rate(*outcomes(30, 9, 2, 9), check="b", margin=0.0)
    assert borderline.outcome is Outcome.FAIL  # p = 67/2048 = 0.033 on its own
    noise = paired_pass_rate(*outcomes(80, 5, 5, 10), check="c", margin=0.0)
    fam = family([bad, borderline, noise], alpha=0.05)
    assert fam.flagged and fam.failed == ["a"]  # Holm: b needs p ≤ 0.05/2
    assert borderline.detail["p_fail_holm"] == pytest.approx(2 * 67 / 2048)


def test_checks_without_discordant_pairs_leave_the_family() -> None:
    bad = paired_pass_rate(*outcomes(100, 40, 5, 55), check="a", margin=0.0)
    borderline = paired_pass_rate(*outcomes(30, 9, 2, 9), check="b", margin=0.0)
    same = paired_pass_rate(*outcomes(100, 0, 0, 100), check="c", margin=0.05)
    fam = family([bad, borderline, same], alpha=0.05)
    assert fam.failed == ["a", "b"]  # a family of two: b is then tested at 0.05
    assert family([same], 0.05).outcome is Outcome.PASS


def test_weights_spend_more_alpha_on_a_check() -> None:
    borderline = paired_pass_rate(*outcomes(30, 9, 2, 9), check="b", margin=0.0)
    noise = paired_pass_rate(*outcomes(80, 5, 5, 10), check="c", margin=0.0)
    assert not family([borderline, noise], 0.05).flagged  # 0.033 > 0.05/2
    assert family([borderline, noise], 0.05, weights={"b": 3.0}).failed == ["b"]  # ≤ 0.05·3/4


def test_verdict_round_trips_through_json() -> None:
    v = paired_pass_rate(*outcomes(30, 10, 2, 8), check="t", margin=0.02)
    assert Verdict.from_dict(v.as_dict()) == v


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        paired_pass_rate([True], [True], check="t", alpha=0.7)
    with pytest.raises(ValueError, match="equal-length"):
        paired_pass_rate([True], [True, False], check="t")
    with pytest.raises(ValueError, match="log scale"):
        continuous([0.0, 1.0], [1.0, 1.0], check="cost")
