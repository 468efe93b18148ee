"""The gate's family verdict: Holm for FAIL, every decidable check for PASS, checks with too few
pairs reported as such; and the look schedule of a sequential replay."""

from __future__ import annotations

import pytest

from turnout.migrate.family import family, min_pairs, rate_min_pairs
from turnout.migrate.gate import Outcome, continuous, paired_pass_rate
from turnout.migrate.sequential import look_level, schedule, spent


def outcomes(both: int, lost: int, gained: int, neither: int) -> tuple[list[bool], list[bool]]:
    old = [True] * both + [True] * lost + [False] * gained + [False] * neither
    new = [True] * both + [False] * lost + [True] * gained + [False] * neither
    return old, new


def test_min_pairs_is_where_full_agreement_first_passes() -> None:
    assert rate_min_pairs(0.05, 0.05) == 52
    assert paired_pass_rate(*outcomes(41, 0, 0, 10), check="t").outcome is Outcome.INCONCLUSIVE
    assert paired_pass_rate(*outcomes(42, 0, 0, 10), check="t").outcome is Outcome.PASS
    assert rate_min_pairs(0.0, 0.05) is None  # no margin: agreement never shows it
    assert rate_min_pairs(0.10, 0.05) < 52 < rate_min_pairs(0.05, 0.01)


def test_a_partial_check_with_too_few_pairs_does_not_hold_a_pass() -> None:
    core = paired_pass_rate(*outcomes(50, 0, 0, 10), check="semantic_match")
    json = paired_pass_rate(*outcomes(9, 0, 0, 0), check="json_match")
    assert json.outcome is Outcome.INCONCLUSIVE
    fam = family([core, json], 0.05, total=60)
    assert fam.outcome is Outcome.PASS and fam.released == ["json_match"]
    assert json.detail["too_few"] and json.detail["min_pairs"] == 52
    assert "too few pairs to decide, not counted: json_match (9 of 52)" in fam.summary()
    # without the replay's size (a canary's unpaired arms) nothing is released
    assert family([core, json], 0.05).outcome is Outcome.INCONCLUSIVE


def test_a_replay_smaller_than_min_pairs_cannot_pass() -> None:
    core = paired_pass_rate(*outcomes(30, 0, 0, 10), check="semantic_match")
    fam = family([core], 0.05, total=40)
    assert fam.outcome is Outcome.INCONCLUSIVE and not fam.released
    assert "semantic_match has 40 pairs, needs 52" in fam.summary()
    assert fam.needs()["pass"] == 52


def test_a_partial_check_worse_than_its_margin_holds_the_family() -> None:
    core = paired_pass_rate(*outcomes(50, 0, 0, 10), check="semantic_match")
    json = paired_pass_rate(*outcomes(7, 2, 0, 0), check="json_match")
    fam = family([core, json], 0.05, total=60)
    assert not fam.flagged and fam.outcome is Outcome.INCONCLUSIVE and not fam.released


def test_a_partial_check_can_still_fail() -> None:
    core = paired_pass_rate(*outcomes(50, 0, 0, 10), check="semantic_match")
    json = paired_pass_rate(*outcomes(0, 12, 0, 0), check="json_match")
    fam = family([core, json], 0.05, total=60)
    assert fam.outcome is Outcome.FAIL and fam.failed == ["json_match"]


def test_needs_is_where_the_observed_rates_would_decide() -> None:
    rates = (70, 8, 6, 16)  # 100 pairs, 2 points worse, 5 tolerated: not settled
    small = paired_pass_rate(*outcomes(*rates), check="semantic_match")
    assert small.outcome is Outcome.INCONCLUSIVE
    need = family([small], 0.05, total=100).needs()["pass"]
    assert need is not None and need > 100

    def at(k: int) -> Outcome:
        return paired_pass_rate(*outcomes(*(k * x for x in rates)), check="s").outcome

    assert at(-(-need // 100)) is Outcome.PASS  # the same rates over at least `need` pairs
    assert at(need // 200) is Outcome.INCONCLUSIVE  # and over half as many


def test_a_worse_candidate_needs_no_pairs_to_pass() -> None:
    worse = paired_pass_rate(*outcomes(50, 20, 0, 10), check="valid")
    fam = family([worse], 0.05, total=80)
    assert fam.needs()["by_check"]["valid"]["pass"] is None
    assert fam.needs()["fail"] is not None


def test_min_pairs_of_a_paired_rank_test() -> None:
    v = continuous([1.0] * 10, [1.0] * 10, check="latency_s")
    assert min_pairs(v) == 5  # 2^-5 < 0.05 < 2^-4
    assert min_pairs(continuous([1.0] * 10, [1.0] * 10, check="x", paired=False)) is None


def test_looks_halve_back_from_the_planned_size() -> None:
    assert schedule(60) == [15, 30, 60]
    assert schedule(200) == [12, 25, 50, 100, 200]
    assert schedule(15) == [15] and schedule(15, min_look=5) == [7, 15]
    with pytest.raises(ValueError, match="at least one request"):
        schedule(0)


def test_the_looks_spend_alpha_and_no_more() -> None:
    looks = schedule(60)
    levels = [look_level(0.05, n, p, 60) for n, p in zip(looks, [0, *looks[:-1]], strict=True)]
    assert sum(levels) == pytest.approx(0.05)
    assert levels[-1] == pytest.approx(0.05 * 7 / 8)  # the last look keeps 7/8 of α
    assert levels[0] < levels[1] < levels[2]
    # a 60-request null can still pass at its last look
    assert rate_min_pairs(0.05, levels[-1]) <= 60
    # a budget that stops early spends only what the schedule gives that many pairs
    assert spent(0.05, 45, 60) < 0.05
