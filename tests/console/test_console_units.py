"""The overview's arithmetic and the session token, without a browser."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.console import overview, session


def row(started: float, latency: float | None, model: str = "m", dep: str = "d") -> dict[str, Any]:
    return {
        "id": f"r{started}",
        "started": started,
        "model": model,
        "outcome": "completed",
        "deployments": [dep],
        "latency_ms": latency,
        "ttft_ms": None,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_usd": 0.001,
    }


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert overview.percentile(values, 50) == 50.0
    assert overview.percentile(values, 99) == 99.0
    assert overview.percentile([7.0], 99) == 7.0
    assert overview.percentile([], 50) is None


def test_the_overview_counts_only_its_window() -> None:
    now = 10_000.0
    rows = [row(now - 1, 100.0), row(now - 30, 300.0, model="x"), row(now - 61, 5000.0)]
    s = overview.summarize(rows, now)
    assert s["requests"] == 2 and s["window_s"] == overview.WINDOW_S
    assert s["latency_ms"] == {"p50": 100.0, "p99": 300.0}
    assert s["by_model"]["x"]["requests"] == 1
    assert sum(b["rps"] for b in s["series"]) * (overview.WINDOW_S / overview.BUCKETS) == 2


def test_a_full_sample_covers_only_the_time_it_spans() -> None:
    now = 10_000.0
    rows = [row(now - i * 0.001, 1.0) for i in range(overview.SAMPLE)]  # 1,000 requests a second
    s = overview.summarize(rows, now)
    assert abs(s["window_s"] - (overview.SAMPLE - 1) * 0.001) < 1e-6
    assert s["rps"] > 900  # not SAMPLE / WINDOW_S


def test_a_session_token_is_bound_to_the_key_and_its_expiry() -> None:
    token = session.mint("k1", now=1000.0)
    assert "k1" not in token
    assert session.valid("k1", token, now=1000.0 + session.LIFETIME_S - 1)
    assert not session.valid("k1", token, now=1000.0 + session.LIFETIME_S + 1)
    assert not session.valid("k2", token, now=1000.0)
    expires, mac = token.split(".")
    assert not session.valid("k1", f"{int(expires) + 9999}.{mac}", now=1000.0)
    assert not session.valid("k1", "", now=1000.0)
    assert session.cookie_token({"cookie": f"a=b; {session.COOKIE}={token}"}) == token


def test_server_ui_is_on_by_default_and_must_be_a_boolean() -> None:

    from turnout.config import ConfigError, parse_config

    assert parse_config("").server.ui is True
    assert parse_config("server: {ui: false}").server.ui is False
    with pytest.raises(ConfigError, match=r"server\.ui"):
        parse_config("server: {ui: 'no'}")


def test_intent_alarms_are_each_groups_latest_rise_within_the_window() -> None:
    from turnout.console import alarms

    def rise(group: str, at: float, recent: float) -> dict[str, Any]:
        return {
            "group": group,
            "at": at,
            "request_id": f"r{at}",
            "reference_rate": 0.05,
            "recent_rate": recent,
        }

    raised = alarms.intent([rise("a", 10, 0.2), rise("a", 20, 0.3), rise("b", 5, 0.4)], since=8)
    assert raised == [
        {
            "kind": "intent",
            "subject": "a",
            "message": "miss rate rose from 5.0% to 30.0% (at request r20)",
        }
    ]


def test_spend_adds_up_within_a_budget_period_and_starts_over_with_the_next() -> None:
    from turnout.console import spend

    day = 86400.0
    buckets = [(day - 7200, 1.0), (day - 3600, 2.0), (day, 4.0), (day + 3600, 8.0)]
    assert [p[2] for p in spend.cumulative(buckets, day)] == [1.0, 3.0, 4.0, 12.0]
    assert [p[2] for p in spend.cumulative(buckets, None)] == [1.0, 3.0, 7.0, 15.0]


def test_the_console_finds_the_guard_config_as_turnout_mcp_does() -> None:
    from turnout.console import mcp_lock
    from turnout.mcp import cli

    assert (mcp_lock.CONFIG_ENV, mcp_lock.DEFAULT_CONFIG) == (cli.CONFIG_ENV, cli.DEFAULT_CONFIG)


def test_the_login_throttle_doubles_its_wait_and_forgets_after_quiet() -> None:
    from turnout.console import throttle

    now = [1000.0]
    t = throttle.LoginThrottle(clock=lambda: now[0])
    for _ in range(throttle.FREE):
        assert t.wait_s("a") == 0.0
        t.failed("a")
    assert t.wait_s("a") == throttle.BASE_S and t.wait_s("b") == 0.0
    now[0] += throttle.BASE_S
    assert t.wait_s("a") == 0.0
    t.failed("a")  # one more wrong key: twice as long
    assert t.wait_s("a") == 2 * throttle.BASE_S
    now[0] += throttle.FORGET_S
    assert t.wait_s("a") == 0.0
    t.failed("a")  # a fresh count after the quiet
    assert t.wait_s("a") == 0.0
    t.succeeded("a")
    assert t.wait_s("a") == 0.0
