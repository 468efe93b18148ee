"""What the HTML report's plot shows: the tests that vote, as the verdict judged them."""

from __future__ import annotations

from turnout.fingerprint.evidence import Evidence, not_applicable
from turnout.fingerprint.report import plot_png, time_span, voting_series
from turnout.fingerprint.store import CheckRecord
from turnout.fingerprint.verdict import holm


def check(at: float) -> CheckRecord:
    evidence = [
        Evidence("mmd", 0.01, 0.1, "MMD²"),
        Evidence("length", 0.5, 0.0, "rel"),
        Evidence("latency", 0.0001, 3.0, "ratio", votes=False),
        not_applicable("metadata", "the same in every response"),
    ]
    verdict = holm(evidence, 0.05, {"mmd": 1.0, "length": 1.0})
    return CheckRecord(
        "c", at, "edge", "edge", "r", verdict.changed, verdict.min_p, verdict.as_dict()
    )


def test_the_plot_shows_only_voting_tests_at_their_holm_adjusted_p() -> None:
    series = voting_series([check(1000.0), check(2000.0)])
    # Latency only informs (its tiny p under the α line would look like an alarm) and metadata
    # could not tell anything: neither is drawn.
    assert set(series) == {"mmd", "length"}
    assert series["mmd"] == [(1000.0, 0.02), (2000.0, 0.02)]  # 0.01 × 2 tests, not the raw 0.01


def test_one_check_gets_a_time_axis_of_hours_not_years() -> None:
    lo, hi = time_span([1_800_000_000.0])
    assert hi - lo == 7200.0
    lo, hi = time_span([0.0, 30 * 86400.0])
    assert lo < 0 < 30 * 86400.0 < hi and hi - lo < 34 * 86400.0


def test_the_plot_renders_one_check() -> None:
    assert plot_png([check(1_800_000_000.0)], 0.05).startswith(b"\x89PNG")
