"""Retries, backoff, fallback and the breaker against a real scripted upstream on loopback."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gateway_harness import RunningGateway
from lifecycle_helpers import check_run, sse_events
from upstream import ScriptedUpstream, Step, free_port

Factory = Callable[[str], RunningGateway]
FAST = "backoff: {base_s: 0.01, max_s: 2.0}"


def config(
    deps: dict[str, str], lifecycle: str = FAST, timeouts: str = "", cooldown: str = ""
) -> str:
    lines = ["deployments:"]
    for name, url in deps.items():
        extra = "".join(f", {x}" for x in (timeouts, cooldown) if x)
        lines.append(f'  {name}: {{kind: openai, base_url: "{url}", model: m-{name}{extra}}}')
    lines.append("models:")
    lines.append(f"  assistant: {{deployments: [{', '.join(deps)}], lifecycle: {{{lifecycle}}}}}")
    return "\n".join(lines) + "\n"


def test_rate_limit_waits_for_retry_after_then_succeeds(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config({"a": upstream.base_url}))
    upstream.script(Step(status=429, headers={"Retry-After": "1"}))
    r = gw.chat(model="assistant")
    rec = check_run(
        gw,
        r,
        outcome="completed",
        path=[
            "received",
            "routed",
            "attempting",
            "backoff",
            "attempting",
            "validating",
            "completed",
        ],
        attempts=[("a", "rate_limited"), ("a", "ok")],
    )
    backoff = rec["events"][3]["attrs"]
    assert backoff["delay_s"] == 1.0 and backoff["retry_after_s"] == 1.0
    first, second = upstream.wait_for_requests(2)
    assert second.at - first.at >= 0.95  # the upstream really was left alone for Retry-After


def test_retry_after_beyond_backoff_cap_is_passed_to_the_client(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config({"a": upstream.base_url}))
    upstream.script(Step(status=429, headers={"Retry-After": "30"}))
    r = gw.chat(model="assistant")
    check_run(
        gw,
        r,
        outcome="failed_upstream",
        status=429,
        path=["received", "routed", "attempting", "failed_upstream"],
        attempts=[("a", "rate_limited")],
    )
    assert r.headers["retry-after"] == "30"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"  # the upstream's own
    assert r.headers["x-turnout-failure"] == "rate_limited"


@pytest.mark.parametrize(
    ("status", "failure"), [(500, "server_error"), (502, "server_error"), (503, "overloaded")]
)
def test_server_errors_fall_back_at_once_without_same_deployment_retries(
    upstream: ScriptedUpstream, gateway_factory: Factory, status: int, failure: str
) -> None:
    with ScriptedUpstream() as second:
        lifecycle = FAST + ", same_deployment_retries: 0"
        gw = gateway_factory(config({"a": upstream.base_url, "b": second.base_url}, lifecycle))
        upstream.script(Step(status=status))
        r = gw.chat(model="assistant")
        rec = check_run(
            gw,
            r,
            outcome="completed",
            path=[
                "received",
                "routed",
                "attempting",
                "fallback",
                "attempting",
                "validating",
                "completed",
            ],
            attempts=[("a", failure), ("b", "ok")],
        )
        assert r.headers["x-turnout-deployment"] == "b"
        assert rec["events"][3]["attrs"]["to"] == "b"
        assert second.requests[0].body["model"] == "m-b"


def test_every_attempt_failing_ends_failed_upstream_after_max_attempts(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config({"a": upstream.base_url}))
    upstream.script(Step(status=503), Step(status=503), Step(status=503))
    r = gw.chat(model="assistant")
    check_run(
        gw,
        r,
        outcome="failed_upstream",
        status=503,
        path=[
            "received",
            "routed",
            "attempting",
            "backoff",
            "attempting",
            "backoff",
            "attempting",
            "failed_upstream",
        ],
        attempts=[("a", "overloaded")] * 3,
    )
    assert "after 3 attempts" in r.json()["error"]["message"]
    assert len(upstream.requests) == 3


def test_connection_refused_falls_back(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    gw = gateway_factory(config({"dead": dead, "live": upstream.base_url}))
    r = gw.chat(model="assistant")
    check_run(
        gw,
        r,
        outcome="completed",
        path=[
            "received",
            "routed",
            "attempting",
            "fallback",
            "attempting",
            "validating",
            "completed",
        ],
        attempts=[("dead", "connection_error"), ("live", "ok")],
    )


def test_client_errors_are_not_retried(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config({"a": upstream.base_url}))
    upstream.script(Step(status=400))
    r = gw.chat(model="assistant")
    check_run(
        gw,
        r,
        outcome="failed_upstream",
        status=400,
        path=["received", "routed", "attempting", "failed_upstream"],
        attempts=[("a", "client_error")],
    )
    assert len(upstream.requests) == 1


def test_malformed_body_is_retried(upstream: ScriptedUpstream, gateway_factory: Factory) -> None:
    gw = gateway_factory(config({"a": upstream.base_url}))
    upstream.script(Step(malformed=True))
    r = gw.chat(model="assistant")
    check_run(
        gw,
        r,
        outcome="completed",
        path=[
            "received",
            "routed",
            "attempting",
            "backoff",
            "attempting",
            "validating",
            "completed",
        ],
        attempts=[("a", "malformed_response"), ("a", "ok")],
    )
    assert r.json()["choices"][0]["message"]["content"] == "Hello from upstream."


def test_slow_first_token_times_out_and_is_retried_invisibly(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(
        config({"a": upstream.base_url}, timeouts="timeouts: {first_token_s: 0.3}")
    )
    upstream.script(Step(delay_s=2.0))
    r = gw.chat(model="assistant", stream=True)
    check_run(
        gw,
        r,
        outcome="completed",
        path=[
            "received",
            "routed",
            "attempting",
            "backoff",
            "attempting",
            "streaming",
            "validating",
            "completed",
        ],
        attempts=[("a", "timeout"), ("a", "ok")],
    )
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    text = "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"]
    )
    assert text == "Hello from upstream."


def test_stream_breaking_after_bytes_ends_with_an_error_event(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config({"a": upstream.base_url}))
    upstream.script(Step(content="one two three four five six", break_after_chunks=2))
    r = gw.chat(model="assistant", stream=True)
    check_run(
        gw,
        r,
        outcome="failed_upstream",
        path=["received", "routed", "attempting", "streaming", "failed_upstream"],
        attempts=[("a", "broken_stream")],
    )
    events = sse_events(r.text)
    assert "[DONE]" not in events
    assert events[-1]["error"]["code"] == "broken_stream"
    assert [e["choices"][0]["delta"].get("content") for e in events[1:-1]] == ["one", " two"]
    assert len(upstream.requests) == 1  # no invisible retry once the client had bytes


def test_stream_stalling_after_bytes_times_out_with_an_error_event(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config({"a": upstream.base_url}, timeouts="timeouts: {idle_s: 0.3}"))
    upstream.script(Step(content="one two three", stall_after_chunks=1))
    r = gw.chat(model="assistant", stream=True)
    rec = check_run(
        gw,
        r,
        outcome="failed_upstream",
        path=["received", "routed", "attempting", "streaming", "failed_upstream"],
        attempts=[("a", "timeout")],
    )
    assert "between chunks" in rec["error"]
    assert sse_events(r.text)[-1]["error"]["code"] == "timeout"


def test_breaker_rests_a_failing_deployment(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    with ScriptedUpstream() as backup:
        gw = gateway_factory(
            config(
                {"a": upstream.base_url, "b": backup.base_url},
                FAST + ", same_deployment_retries: 0",
                cooldown="cooldown: {failures: 2, seconds: 60}",
            )
        )
        upstream.script(Step(status=500), Step(status=500))
        for _ in range(2):
            assert gw.chat(model="assistant").headers["x-turnout-deployment"] == "b"
        r = gw.chat(model="assistant")
        rec = check_run(
            gw,
            r,
            outcome="completed",
            path=["received", "routed", "attempting", "validating", "completed"],
            attempts=[("b", "ok")],
        )
        candidates = rec["events"][1]["attrs"]["candidates"]
        assert candidates[0]["rejected"] == "cooling down after repeated failures"
        assert len(upstream.requests) == 2  # the third request never reached `a`


def test_all_deployments_cooling_down_fails_fast(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(
        config(
            {"a": upstream.base_url},
            lifecycle="max_attempts: 1",
            cooldown="cooldown: {failures: 1, seconds: 60, probe_after_s: 60}",
        )
    )
    upstream.script(Step(status=500))
    assert gw.chat(model="assistant").status_code == 502
    r = gw.chat(model="assistant")
    check_run(
        gw,
        r,
        outcome="failed_upstream",
        status=503,
        path=["received", "failed_upstream"],
        attempts=[],
    )
    assert int(r.headers["retry-after"]) > 50
    assert len(upstream.requests) == 1


def test_api_key_goes_upstream_but_never_into_the_record(
    upstream: ScriptedUpstream, gateway_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_UPSTREAM_KEY", "sk-test-secret-123456")
    gw = gateway_factory(
        f"""
deployments:
  a: {{kind: openai, base_url: "{upstream.base_url}", model: m, api_key_env: TEST_UPSTREAM_KEY}}
models:
  assistant: {{deployments: [a]}}
"""
    )
    r = gw.chat(model="assistant")
    assert r.status_code == 200
    assert upstream.requests[0].headers["authorization"] == "Bearer sk-test-secret-123456"
    gw.gateway.writer.flush()
    raw = gw.gateway.writer.path.read_bytes()
    assert b"sk-test-secret" not in raw
    assert "sk-test-secret" not in gw.http.get("/metrics").text
