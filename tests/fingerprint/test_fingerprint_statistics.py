"""The statistics behind a fingerprint verdict, as specifications on small exact inputs."""

from __future__ import annotations

import numpy as np

from turnout.fingerprint.agreement import agreement_test, common_prefixes
from turnout.fingerprint.alarms import CLEARED, RAISED, Streak
from turnout.fingerprint.cusum import MeanCusum, RateCusum
from turnout.fingerprint.evidence import Evidence, not_applicable
from turnout.fingerprint.logprobs import logprob_test
from turnout.fingerprint.mmd import char_codes, hamming_gram, mmd_test
from turnout.fingerprint.permutation import Shuffles, average_ranks
from turnout.fingerprint.refusal import is_refusal
from turnout.fingerprint.samples import LOGPROB, Sample
from turnout.fingerprint.signals import metadata_test, unanswered_test
from turnout.fingerprint.verdict import holm


def test_hamming_kernel_is_the_share_of_positions_with_the_same_character() -> None:
    gram = hamming_gram(char_codes(["abcd", "abxd", "ab", "ab"], 4))
    assert gram[0, 1] == 0.75  # a, b, d agree
    assert gram[0, 2] == 0.5  # only a, b: "ab" has nothing where "abcd" has c, d
    assert gram[2, 3] == 0.5  # padding never agrees: short answers do not look alike for it
    assert gram[0, 0] == 1.0


def test_mmd_rejects_completions_from_another_distribution() -> None:
    rng = np.random.default_rng(1)
    words = ["alpha", "beta", "gamma", "delta"]
    base = {f"p{i}": [str(rng.choice(words[:2])) for _ in range(8)] for i in range(5)}
    other = {f"p{i}": [str(rng.choice(words[2:])) for _ in range(8)] for i in range(5)}
    same = {f"p{i}": [str(rng.choice(words[:2])) for _ in range(8)] for i in range(5)}
    changed = mmd_test(base, other, shuffles=Shuffles(500, np.random.default_rng(2)))
    unchanged = mmd_test(base, same, shuffles=Shuffles(500, np.random.default_rng(2)))
    assert changed.p_value < 0.01 and changed.effect > 0
    assert unchanged.p_value > 0.05


def test_mmd_compares_only_completions_of_the_same_probe() -> None:
    # Each run answers each probe the same way, so nothing changed; only the mix across probes
    # looks different, and the probe indicator in the kernel must not count it.
    base = {"a": ["x"] * 6 + ["y"] * 2, "b": ["zz"] * 8}
    fresh = {"a": ["x"] * 6 + ["y"] * 2, "b": ["zz"] * 2}
    result = mmd_test(base, fresh, shuffles=Shuffles(500, np.random.default_rng(0)))
    assert result.p_value > 0.5


def test_holm_controls_the_family_and_leaves_out_tests_that_cannot_tell() -> None:
    evidence = [
        Evidence("mmd", 0.02, 0.1, "MMD²"),
        Evidence("length", 0.04, 0.1, "rel"),
        not_applicable("unanswered", "none failed, empty or refused"),
        Evidence("latency", 0.0001, 2.0, "ratio", votes=False),
    ]
    verdict = holm(evidence, 0.05, {"mmd": 1.0, "length": 1.0})
    # Two voting tests: 0.02 ≤ 0.05/2 rejects, then 0.04 ≤ 0.05/1 rejects too.
    assert verdict.changed
    assert verdict.reasons == ["mmd", "length"]
    assert evidence[0].p_adjusted == 0.04 and evidence[1].p_adjusted == 0.04
    assert evidence[3].p_adjusted is None  # informs, never votes


def test_holm_needs_the_smallest_p_below_alpha_over_the_family_size() -> None:
    evidence = [Evidence(n, 0.03, 0.0, "") for n in ("mmd", "length", "metadata")]
    assert not holm(evidence, 0.05, {}).changed  # 0.03 > 0.05/3


def test_weights_spend_more_of_alpha_on_the_mmd_test() -> None:
    # Weights 3:2:1 give the MMD test half of α: 0.02 ≤ 0.05·3/6 rejects.
    evidence = [
        Evidence("mmd", 0.02, 0.0, ""),
        Evidence("typicality", 0.5, 0.0, ""),
        Evidence("length", 0.5, 0.0, ""),
    ]
    verdict = holm(evidence, 0.05)
    assert verdict.reasons == ["mmd"]
    assert evidence[0].p_adjusted == 0.04


def test_refusals_are_recognised_in_several_languages() -> None:
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("Lo siento, no puedo ayudarte.")
    assert is_refusal("抱歉，我无法回答。")
    assert not is_refusal("Sure! Here is a pancake recipe.")


def _answers(texts: list[str | None]) -> list[Sample]:
    """None stands for a request that failed."""
    return [
        Sample("p", text=t or "", error=None if t is not None else "server_error: 500")
        for t in texts
    ]


def test_a_rise_in_refusals_is_detected() -> None:
    base = {"p": _answers(["Sure, here it is."] * 20)}
    fresh = {"p": _answers(["I'm sorry, I can't do that."] * 10 + ["Sure."] * 10)}
    result = unanswered_test(base, fresh, shuffles=Shuffles(500, np.random.default_rng(0)))
    assert result.p_value < 0.01
    assert result.effect == 0.5
    assert "refused 0.0% → 50.0%" in result.detail


def test_failed_and_empty_answers_count_as_unanswered() -> None:
    base = {"p": _answers(["Sure."] * 19 + [""])}
    fresh = {"p": _answers(["Sure."] * 10 + [""] * 5 + [None] * 5)}
    result = unanswered_test(base, fresh, shuffles=Shuffles(500, np.random.default_rng(0)))
    assert result.p_value < 0.01 and result.effect == 0.45
    assert "failed 0.0% → 25.0%" in result.detail and "empty 5.0% → 25.0%" in result.detail


def test_common_prefixes_are_counted_in_characters_up_to_the_first_difference() -> None:
    prefixes = common_prefixes(["Paris is", "Paris was", "Lyon", ""])
    assert prefixes[0, 1] == 6  # "Paris "
    assert prefixes[0, 2] == 0 and prefixes[3, 3] == 0  # an empty text shares nothing


def test_completions_that_open_alike_more_often_are_a_change_in_dispersion() -> None:
    rng = np.random.default_rng(0)
    openings = ["The river", "The sea", "A lake", "Some rain", "Big waves", "Cold ice"]

    def run(concentrated: bool) -> dict[str, list[str]]:
        weights = [0.75] + [0.05] * 5 if concentrated else [1 / 6] * 6
        return {
            f"p{i}": [f"{rng.choice(openings, p=weights)} {rng.integers(100)}" for _ in range(8)]
            for i in range(6)
        }

    base = run(concentrated=False)
    colder = agreement_test(base, run(True), shuffles=Shuffles(999, np.random.default_rng(1)))
    same = agreement_test(base, run(False), shuffles=Shuffles(999, np.random.default_rng(1)))
    assert colder.p_value < 0.01 and colder.effect > 0
    assert same.p_value > 0.05


def test_a_new_model_name_or_fingerprint_in_responses_is_detected() -> None:
    base = [Sample("p", model="m", system_fingerprint="fp_a") for _ in range(10)]
    fresh = [Sample("p", model="m", system_fingerprint="fp_b") for _ in range(10)]
    result = metadata_test(base, fresh, shuffles=Shuffles(500, np.random.default_rng(0)))
    assert result.p_value < 0.01
    assert "fp_b" in result.detail
    same = metadata_test(base, base, shuffles=Shuffles(500, np.random.default_rng(0)))
    assert not same.applicable


def test_logprob_test_sees_shifted_log_probabilities_and_ignores_identical_ones() -> None:
    def lp(probe: str, a: float, b: float) -> Sample:
        return Sample(probe, kind=LOGPROB, logprobs={"yes": a, "no": b})

    base = [lp(p, -0.1, -2.5) for p in "abcde" for _ in range(2)]
    moved = [lp(p, -0.9, -0.6) for p in "abcde" for _ in range(2)]
    # Exact p is (2/6)^5 ≈ 0.004; 500 unseeded shuffles put the estimate above 0.01 one run in 20.
    shuffles = Shuffles(2000, np.random.default_rng(1))
    assert logprob_test(base, moved, shuffles=shuffles).p_value < 0.01
    assert logprob_test(base, base, shuffles=Shuffles(500)).p_value == 1.0


def test_two_rejections_in_a_row_raise_the_alarm_and_a_pass_clears_it() -> None:
    streak = Streak(needed=2)
    assert streak.observe(True, 1.0) is None
    assert streak.observe(False, 2.0) is None  # one rejection alone is forgiven
    assert streak.observe(True, 3.0) is None
    assert streak.observe(True, 4.0) == RAISED
    assert streak.since == 3.0
    assert streak.observe(True, 5.0) is None  # raised once, not at every rejection
    assert streak.observe(False, 6.0) == CLEARED


def test_cusum_rarely_alarms_on_stationary_streams() -> None:
    alarmed = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        detector = MeanCusum(warmup=1000, batch=20)
        alarmed += any(detector.update(float(x)) for x in rng.normal(3.0, 1.0, 10_000))
    assert alarmed <= 2


def test_cusum_catches_a_shift_in_the_mean_and_says_which_way() -> None:
    rng = np.random.default_rng(11)
    detector = MeanCusum(warmup=1000, batch=20)
    for x in rng.normal(3.0, 1.0, 1000):
        detector.update(float(x))
    shifted = [detector.update(float(x)) for x in rng.normal(2.5, 1.0, 2000)]
    first = next(i for i, s in enumerate(shifted) if s)
    shift = shifted[first]
    assert shift is not None and shift.direction == -1
    assert first < 600  # half a standard deviation of single values, found within hundreds


def test_bernoulli_cusum_catches_a_rising_rate() -> None:
    rng = np.random.default_rng(3)
    detector = RateCusum(warmup=1000)
    assert not any(detector.update(bool(x)) for x in rng.random(10_000) < 0.02)
    hits = [detector.update(bool(x)) for x in rng.random(2000) < 0.10]
    assert any(hits)


def test_tied_values_share_a_rank_whichever_run_they_came_from() -> None:
    # Empty answers all score alike: if ties were broken by position, the baseline (listed
    # first) would always rank lower, and a null comparison would look like a change.
    assert average_ranks(np.array([2.0, 0.0, 0.0, 1.0, 0.0])).tolist() == [4.0, 1.0, 1.0, 3.0, 1.0]
