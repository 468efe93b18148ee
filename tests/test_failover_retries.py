"""Same-deployment retries, fallback, and final errors that tell clients whether to retry."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import openai
import pytest
from failover_helpers import WireTap, attempts, config, path, record, sdk
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step, free_port

Factory = Callable[[str], RunningGateway]


def test_one_off_500_is_retried_on_the_same_deployment(gateway_factory: Factory) -> None:
    with ScriptedUpstream() as a, ScriptedUpstream() as b:
        gw = gateway_factory(config({"a": (a, ""), "b": (b, "")}))
        a.script(Step(status=500))
        r = gw.chat(model="assistant")

        assert r.status_code == 200, r.text
        assert r.headers["x-turnout-attempts"] == "2"
        assert r.headers["x-turnout-deployment"] == "a"
        rec = record(gw, r.headers["x-turnout-request-id"])
        assert rec["outcome"] == "completed"
        assert attempts(rec) == [("a", "server_error"), ("a", "ok")]
        assert len(a.requests) == 2 and b.requests == []


def test_rate_limit_with_a_short_retry_after_waits_for_the_same_deployment(
    gateway_factory: Factory,
) -> None:
    with ScriptedUpstream() as a, ScriptedUpstream() as b:
        gw = gateway_factory(config({"a": (a, ""), "b": (b, "")}))
        a.script(Step(status=429, headers={"Retry-After": "1"}))
        r = gw.chat(model="assistant")

        assert r.status_code == 200, r.text
        rec = record(gw, r.headers["x-turnout-request-id"])
        assert attempts(rec) == [("a", "rate_limited"), ("a", "ok")]
        assert b.requests == []
        first, second = a.requests
        assert second.at - first.at >= 0.95  # Retry-After was honoured


def test_rate_limit_beyond_the_backoff_cap_falls_back_at_once(gateway_factory: Factory) -> None:
    with ScriptedUpstream() as a, ScriptedUpstream() as b:
        gw = gateway_factory(config({"a": (a, ""), "b": (b, "")}))
        a.script(Step(status=429, headers={"Retry-After": "30"}))
        r = gw.chat(model="assistant")

        assert r.status_code == 200, r.text
        rec = record(gw, r.headers["x-turnout-request-id"])
        assert attempts(rec) == [("a", "rate_limited"), ("b", "ok")]
        assert "backoff" not in path(rec)
        assert len(a.requests) == 1


@pytest.mark.parametrize("fault", ["refused", "timeout"])
def test_connection_failures_and_timeouts_fall_back_at_once(
    gateway_factory: Factory, fault: str
) -> None:
    with ScriptedUpstream() as a, ScriptedUpstream() as b:
        if fault == "refused":
            first, failure = (f"http://127.0.0.1:{free_port()}/v1", ""), "connection_error"
        else:
            a.script(Step(delay_s=3.0))
            first, failure = (a, "timeouts: {first_token_s: 0.3, total_s: 0.3}"), "timeout"
        gw = gateway_factory(config({"a": first, "b": (b, "")}))
        r = gw.chat(model="assistant")

        assert r.status_code == 200, r.text
        rec = record(gw, r.headers["x-turnout-request-id"])
        assert attempts(rec) == [("a", failure), ("b", "ok")]
        assert "backoff" not in path(rec)


def test_same_deployment_retries_0_falls_back_at_once_after_a_500(
    gateway_factory: Factory,
) -> None:
    with ScriptedUpstream() as a, ScriptedUpstream() as b:
        lifecycle = "backoff: {base_s: 0.01, max_s: 2.0}, same_deployment_retries: 0"
        gw = gateway_factory(config({"a": (a, ""), "b": (b, "")}, lifecycle=lifecycle))
        a.script(Step(status=500))
        r = gw.chat(model="assistant")

        assert r.status_code == 200, r.text
        rec = record(gw, r.headers["x-turnout-request-id"])
        assert attempts(rec) == [("a", "server_error"), ("b", "ok")]
        assert len(a.requests) == 1


def test_the_sdk_makes_no_extra_calls_after_a_final_502(gateway_factory: Factory) -> None:
    failing = Step(status=500)
    with ScriptedUpstream(failing) as a, ScriptedUpstream(failing) as b:
        gw = gateway_factory(config({"a": (a, ""), "b": (b, "")}))
        tap = WireTap()
        with pytest.raises(openai.APIStatusError) as raised:
            sdk(gw, tap).chat.completions.create(
                model="assistant", messages=[{"role": "user", "content": "hi"}]
            )

        err = raised.value
        assert len(tap.calls) == 1, f"the SDK called the gateway {len(tap.calls)} times"
        assert err.status_code == 502
        assert err.response.headers["x-should-retry"] == "false"
        assert err.response.headers["x-turnout-failure"] == "server_error"
        rec = record(gw, err.response.headers["x-turnout-request-id"])
        upstream_calls = len(a.requests) + len(b.requests)
        assert upstream_calls == int(err.response.headers["x-turnout-attempts"])
        assert upstream_calls == len(rec["attempt_log"])
        assert rec["outcome"] == "failed_upstream"


@pytest.mark.parametrize(
    ("step", "status", "failure"),
    [
        (Step(status=500), 502, "server_error"),
        (Step(status=503), 503, "overloaded"),
        (Step(status=400), 400, "client_error"),
        (Step(malformed=True), 502, "malformed_response"),
        (Step(drop_connection=True), 502, "connection_error"),
    ],
    ids=["500", "503", "400", "malformed", "dropped"],
)
def test_every_final_error_names_its_failure_and_says_do_not_retry(
    upstream: ScriptedUpstream,
    gateway_factory: Factory,
    step: Step,
    status: int,
    failure: str,
) -> None:
    upstream.default = step
    gw = gateway_factory(config({"a": (upstream, "cooldown: {failures: 100, seconds: 1}")}))
    r = gw.chat(model="assistant")

    assert r.status_code == status, r.text
    assert r.headers["x-turnout-outcome"] == "failed_upstream"
    assert r.headers["x-turnout-failure"] == failure
    assert r.headers["x-should-retry"] == "false"
    assert len(upstream.requests) == int(r.headers["x-turnout-attempts"])


def test_every_deployment_cooling_down_says_retry_later(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(
        config(
            {"a": (upstream, "cooldown: {failures: 1, seconds: 60}")},
            lifecycle="max_attempts: 1",
        )
    )
    upstream.script(Step(status=500))
    assert gw.chat(model="assistant").status_code == 502
    r = gw.chat(model="assistant")

    assert r.status_code == 503
    assert r.headers["x-should-retry"] == "true"
    assert int(r.headers["retry-after"]) > 0


def test_every_deployment_cooling_down_still_names_a_failure(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    """Every final error carries x-turnout-failure, this one included."""
    gw = gateway_factory(
        config(
            {"a": (upstream, "cooldown: {failures: 1, seconds: 60}")},
            lifecycle="max_attempts: 1",
        )
    )
    upstream.script(Step(status=500))
    assert gw.chat(model="assistant").status_code == 502
    r = gw.chat(model="assistant")

    assert r.status_code == 503
    assert r.headers.get("x-turnout-failure"), dict(r.headers)


def test_a_shed_request_says_retry_later(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config({"a": (upstream, "max_concurrency: 1, max_queue: 0")}))
    release = threading.Event()
    upstream.script(Step(hold=release))
    busy = threading.Thread(
        target=httpx.post,
        args=(f"{gw.base_url}/chat/completions",),
        kwargs={
            "json": {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]},
            "timeout": 30,
        },
    )
    busy.start()
    try:
        upstream.wait_for_requests(1)
        r = gw.chat(model="assistant")
    finally:
        release.set()
        busy.join(timeout=10)

    assert r.status_code == 503 and r.json()["error"]["code"] == "shed"
    assert r.headers["x-should-retry"] == "true"
    assert int(r.headers["retry-after"]) > 0
