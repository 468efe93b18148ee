"""Output-length prediction: families, fallbacks, caps, error tracking, the baselines."""

from __future__ import annotations

import math
import random

from turnout.routing.length import (
    AssumeMaxTokens,
    FamilyQuantiles,
    GlobalMean,
    LengthFeatures,
    LengthForecast,
    features_from_body,
)


def test_families_are_told_apart_by_system_prompt() -> None:
    p = FamilyQuantiles(min_samples=10)
    short = LengthFeatures("m", "classify", 16, "json")
    long = LengthFeatures("m", "essay", 4096, "text")
    for _ in range(50):
        p.observe(short, 5)
        p.observe(long, 1200)
    assert p.predict(short).mean < 10
    assert 1000 < p.predict(long).mean < 1400
    assert p.predict(long).source == "app"


def test_an_unseen_application_borrows_from_coarser_levels() -> None:
    p = FamilyQuantiles(min_samples=10)
    for _ in range(30):
        p.observe(LengthFeatures("m", "a", None), 300)
    forecast = p.predict(LengthFeatures("m", "never-seen", None))
    assert forecast.source == "shape"
    assert 250 < forecast.mean < 350


def test_quantiles_follow_the_distribution() -> None:
    rng = random.Random(3)
    p = FamilyQuantiles(min_samples=10)
    f = LengthFeatures("m", "chat", None)
    for _ in range(2000):
        p.observe(f, round(rng.lognormvariate(math.log(200), 1.0)))
    q = p.predict(f).quantiles()
    assert 160 < q[0.5] < 250  # true median 200
    assert 550 < q[0.9] < 900  # true p90 ≈ 720


def test_forecasts_never_exceed_max_tokens() -> None:
    p = FamilyQuantiles(min_samples=5)
    f = LengthFeatures("m", "s", 64)
    for _ in range(20):
        p.observe(f, 64)
    assert max(p.predict(f).points) <= 64
    assert p.predict(LengthFeatures("other", None, 32)).mean <= 32  # the prior is capped too


def test_remaining_tokens_grow_with_age_in_a_heavy_tail() -> None:
    forecast = LengthForecast(100.0, (10, 20, 40, 80, 160, 320, 640, 1280))
    from turnout.routing.balance import Flight

    f = Flight(100, forecast.points, None, 0.0)
    assert f.remaining(0) < f.remaining(300)  # a long answer so far is likely to go on


def test_prediction_error_is_tracked_per_route() -> None:
    p = FamilyQuantiles(min_samples=5)
    f = LengthFeatures("m", "s", None)
    for _ in range(40):
        p.observe(f, 100)
    errors = p.errors["m"].summary()
    assert errors["n"] == 40
    assert errors["mae_tokens"] < 60  # the first forecasts (prior 256) were off, later ones not


def test_the_default_beats_both_naive_baselines_on_a_mixed_stream() -> None:
    rng = random.Random(11)
    families = [("classify", 16, 5, 0.4), ("chat", None, 200, 0.9), ("write", 4096, 900, 0.5)]
    predictors: dict[str, FamilyQuantiles | AssumeMaxTokens | GlobalMean] = {
        "family": FamilyQuantiles(),
        "max": AssumeMaxTokens(),
        "mean": GlobalMean(),
    }
    for _ in range(3000):
        name, cap, median, sigma = rng.choice(families)
        n = max(1, round(rng.lognormvariate(math.log(median), sigma)))
        n = min(n, cap) if cap else n
        f = LengthFeatures("m", name, cap)
        for p in predictors.values():
            p.observe(f, n)
    err = {k: p.errors["m"].summary() for k, p in predictors.items()}
    for baseline in ("max", "mean"):
        assert err["family"]["mae_tokens"] < err[baseline]["mae_tokens"]
        assert err["family"]["mean_abs_log_ratio"] < err[baseline]["mean_abs_log_ratio"]


def test_features_come_from_the_request_body() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "You classify."},
            {"role": "user", "content": "x"},
        ],
        "max_tokens": 20,
        "response_format": {"type": "json_object"},
    }
    f = features_from_body("m", body)
    g = features_from_body("m", {**body, "messages": [{"role": "system", "content": "Other."}]})
    assert f.response_format == "json" and f.max_tokens == 20 and f.max_tokens_bucket == "≤32"
    assert f.system_hash is not None and f.system_hash != g.system_hash
    assert features_from_body("m", {"messages": [], "tools": [{}]}).response_format == "tools"
