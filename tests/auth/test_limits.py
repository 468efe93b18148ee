"""A key's limits enforced by one process: sliding windows, token settling, budgets, headers."""

from __future__ import annotations

import asyncio

import pytest

from turnout.auth.limits import KeyLimits, LimitsError, LocalLimits, Verdict, duration

DAY_S = 86400.0


class Clock:
    """Both clocks the limits read, moved by hand."""

    def __init__(self, wall: float = 10 * DAY_S + 3600) -> None:
        self.now = 1000.0
        self.wall_now = wall

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall_now += seconds


def limits(
    rpm: int | None = None,
    tpm: int | None = None,
    budget: float | None = None,
    period: float | None = DAY_S,
    alert_at: float | None = None,
) -> KeyLimits:
    return KeyLimits("key-1", rpm, tpm, budget, period, alert_at)


def local(clock: Clock, **hooks: object) -> LocalLimits:
    return LocalLimits(clock=clock, wall=clock.wall, **hooks)  # type: ignore[arg-type]


def admit(lim: LocalLimits, key: KeyLimits, predicted: int = 0) -> Verdict:
    return asyncio.run(lim.admit(key, predicted))


def test_requests_over_the_rpm_are_refused_until_the_oldest_leaves_the_window() -> None:
    clock = Clock()
    lim, key = local(clock), limits(rpm=3)
    for _ in range(3):
        assert admit(lim, key).ok
        clock.advance(10)
    refused = admit(lim, key)
    assert (refused.ok, refused.reason) == (False, "rpm")
    assert refused.retry_after_s == pytest.approx(30)  # the first, admitted 30 s ago, leaves at 60
    clock.advance(29.9)
    assert admit(lim, key).reason == "rpm"
    clock.advance(0.1)
    assert admit(lim, key).ok
    assert admit(lim, key).reason == "rpm"


def test_a_refused_request_does_not_count() -> None:
    clock = Clock()
    lim, key = local(clock), limits(rpm=1)
    assert admit(lim, key).ok
    for _ in range(5):
        assert not admit(lim, key).ok
    clock.advance(60)
    assert admit(lim, key).ok


def test_concurrent_admissions_take_exactly_the_limit() -> None:
    lim, key = LocalLimits(), limits(rpm=20)

    async def burst() -> list[Verdict]:
        return await asyncio.gather(*(lim.admit(key, 5) for _ in range(40)))

    assert sum(v.ok for v in asyncio.run(burst())) == 20


def test_headers_say_the_limit_what_is_left_and_when_the_window_is_empty_again() -> None:
    clock = Clock()
    lim, key = local(clock), limits(rpm=10, tpm=1000)
    admit(lim, key, 100)
    clock.advance(15.5)
    verdict = admit(lim, key, 300)
    assert verdict.headers == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "8",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "600",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    clock.advance(50)
    later = admit(lim, limits(rpm=10, tpm=1000), 0)  # a request predicting no tokens
    assert later.headers["x-ratelimit-remaining-requests"] == "8"  # the first has left
    assert later.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert later.headers["x-ratelimit-reset-tokens"] == "10s"  # when the 300 leave


def test_a_key_without_rate_limits_gets_no_rate_headers() -> None:
    verdict = admit(local(Clock()), limits(budget=5.0))
    assert verdict == Verdict(True, None, None, {})


def test_predicted_tokens_count_at_admission() -> None:
    clock = Clock()
    lim, key = local(clock), limits(tpm=1000)
    assert admit(lim, key, 600).ok
    clock.advance(20)
    refused = admit(lim, key, 500)
    assert refused.reason == "tpm"
    assert refused.retry_after_s == pytest.approx(40)
    assert refused.headers["x-ratelimit-remaining-tokens"] == "400"
    assert admit(lim, key, 400).ok


def test_settle_corrects_the_prediction_to_the_real_tokens() -> None:
    clock = Clock()
    lim, key = local(clock), limits(tpm=1000)
    assert admit(lim, key, 800).ok
    assert admit(lim, key, 300).reason == "tpm"
    asyncio.run(lim.settle(key, 800, 200, 0.0))  # it used far less than predicted
    assert admit(lim, key, 300).ok
    assert admit(lim, key, 100).ok
    asyncio.run(lim.settle(key, 300, 700, 0.0))  # and this one more: 200 + 700 + 100
    assert admit(lim, key, 1).reason == "tpm"
    assert admit(lim, limits(tpm=1000), 0).headers["x-ratelimit-remaining-tokens"] == "0"


def test_tokens_used_after_an_admission_left_the_window_still_count() -> None:
    clock = Clock()
    lim, key = local(clock), limits(tpm=1000)
    assert admit(lim, key, 100).ok
    clock.advance(90)  # a long stream: its admission has left the window
    asyncio.run(lim.settle(key, 100, 700, 0.0))
    assert admit(lim, key, 401).reason == "tpm"  # the 600 beyond the prediction count now
    assert admit(lim, key, 400).ok


def test_a_request_predicting_more_than_the_tpm_never_fits() -> None:
    verdict = admit(local(Clock()), limits(tpm=1000), 1001)
    assert (verdict.reason, verdict.retry_after_s) == ("tpm", None)


def test_a_zero_rpm_refuses_everything_and_retry_cannot_help() -> None:
    verdict = admit(local(Clock()), limits(rpm=0))
    assert (verdict.ok, verdict.reason, verdict.retry_after_s) == (False, "rpm", None)


def test_the_request_crossing_the_budget_completes_and_the_next_is_refused() -> None:
    clock = Clock()
    lim, key = local(clock), limits(budget=1.0)
    assert admit(lim, key).ok
    asyncio.run(lim.settle(key, 0, 0, 0.7))
    assert admit(lim, key).ok  # 0.7 spent: under
    asyncio.run(lim.settle(key, 0, 0, 0.6))  # crosses: settled all the same
    assert lim.spent_usd("key-1") == pytest.approx(1.3)
    refused = admit(lim, key)
    assert (refused.ok, refused.reason) == (False, "budget")
    assert refused.retry_after_s == pytest.approx(DAY_S - 3600)  # midnight UTC


def test_a_budget_resets_when_its_period_ends() -> None:
    clock = Clock()
    lim, key = local(clock), limits(budget=1.0)
    asyncio.run(lim.settle(key, 0, 0, 1.0))
    assert admit(lim, key).reason == "budget"
    clock.advance(DAY_S)
    assert lim.spent_usd("key-1") == 0.0
    assert admit(lim, key).ok


def test_a_budget_without_a_period_never_resets() -> None:
    clock = Clock()
    lim, key = local(clock), limits(budget=1.0, period=None)
    asyncio.run(lim.settle(key, 0, 0, 1.5))
    clock.advance(365 * DAY_S)
    verdict = admit(lim, key)
    assert (verdict.reason, verdict.retry_after_s) == ("budget", None)


def test_every_settled_cost_reaches_the_spend_hook_with_its_period() -> None:
    clock, spent = Clock(), []
    lim = local(clock, on_spend=lambda *a: spent.append(a))
    key = limits(budget=1.0)
    asyncio.run(lim.settle(key, 0, 0, 0.25))
    asyncio.run(lim.settle(key, 0, 0, 0.0))  # nothing spent: nothing to record
    clock.advance(DAY_S)
    asyncio.run(lim.settle(key, 0, 0, 0.5))
    assert spent == [("key-1", 10 * DAY_S, 0.25), ("key-1", 11 * DAY_S, 0.5)]


def test_the_soft_budget_alerts_once_per_period() -> None:
    clock, alerts = Clock(), []
    lim = local(clock, on_alert=lambda *a: alerts.append(a))
    key = limits(budget=1.0, alert_at=0.8)
    for _ in range(4):
        asyncio.run(lim.settle(key, 0, 0, 0.3))
    assert alerts == [("key-1", 10 * DAY_S, pytest.approx(0.9), 1.0)]
    clock.advance(DAY_S)
    for _ in range(3):
        asyncio.run(lim.settle(key, 0, 0, 0.3))
    assert len(alerts) == 2


def test_seeded_spend_from_the_record_is_enforced() -> None:
    clock = Clock()
    lim, key = local(clock), limits(budget=1.0)
    lim.seed_spend(key, 9 * DAY_S, 5.0)  # a past period: ignored
    assert admit(lim, key).ok
    lim.seed_spend(key, 10 * DAY_S, 1.0)
    assert lim.spent_usd("key-1") == 1.0
    assert admit(lim, key).reason == "budget"
    lim.seed_spend(key, 10 * DAY_S, 0.5)  # never lowers what is known
    assert lim.spent_usd("key-1") == 1.0


@pytest.mark.parametrize(
    ("predicted", "tokens", "cost"),
    [(-1, 0, 0.0), (0, -5, 0.0), (0, 0, -0.1), (0, 0, float("nan")), (0, 0, float("inf"))],
)
def test_impossible_counts_are_a_clear_error(predicted: int, tokens: int, cost: float) -> None:
    lim = local(Clock())
    with pytest.raises(LimitsError):
        asyncio.run(lim.settle(limits(tpm=10), predicted, tokens, cost))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.0169, "17ms"), (0.999, "999ms"), (1, "1s"), (1.5, "1.5s"), (59.9641, "59.965s"),
     (60, "1m0s"), (90.25, "1m30.25s"), (3600, "1h0m0s"), (3723, "1h2m3s"), (-2, "0s")],
)  # fmt: skip
def test_durations_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text
