"""An upstream 400 for a prompt too long for its context window, in each provider's words."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from failover_helpers import attempts, config, record
from gateway_harness import RunningGateway
from upstream import CONTENT_POLICY_VIOLATION, CONTEXT_EXCEEDED, ScriptedUpstream, Step

Factory = Callable[[str], RunningGateway]
PROVIDERS = sorted(CONTEXT_EXCEEDED)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_context_exceeded_falls_back_only_to_a_larger_window(
    gateway_factory: Factory, provider: str
) -> None:
    with (
        ScriptedUpstream() as small,
        ScriptedUpstream() as same,
        ScriptedUpstream() as large,
    ):
        gw = gateway_factory(
            config(
                {
                    "small": (small, "context_window: 4096"),
                    "same": (same, "context_window: 4096"),
                    "large": (large, "context_window: 32768"),
                }
            )
        )
        small.script(Step(status=400, raw=CONTEXT_EXCEEDED[provider]))
        r = gw.chat(model="assistant")

        assert r.status_code == 200, r.text
        assert r.headers["x-turnout-deployment"] == "large"
        rec = record(gw, r.headers["x-turnout-request-id"])
        assert rec["outcome"] == "completed"
        assert attempts(rec) == [("small", "context_exceeded"), ("large", "ok")]
        assert len(small.requests) == 1  # never retried where it did not fit
        assert same.requests == []  # no bigger than the one that failed


def test_context_exceeded_with_no_larger_window_returns_the_upstreams_error(
    gateway_factory: Factory,
) -> None:
    with ScriptedUpstream() as large, ScriptedUpstream() as small:
        gw = gateway_factory(
            config(
                {
                    "large": (large, "context_window: 32768"),
                    "small": (small, "context_window: 4096"),
                }
            )
        )
        large.script(Step(status=400, raw=CONTEXT_EXCEEDED["openai"]))
        r = gw.chat(model="assistant")

        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "context_length_exceeded"
        assert err["param"] == "messages"
        assert r.headers["x-turnout-failure"] == "context_exceeded"
        assert r.headers["x-should-retry"] == "false"
        assert r.headers["x-turnout-outcome"] == "failed_upstream"
        rec = record(gw, r.headers["x-turnout-request-id"])
        assert rec["outcome"] == "failed_upstream"
        assert attempts(rec) == [("large", "context_exceeded")]
        assert len(large.requests) == 1 and small.requests == []


def test_content_policy_violation_reaches_the_client_with_its_own_code(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    with ScriptedUpstream() as other:
        gw = gateway_factory(config({"a": (upstream, ""), "b": (other, "")}))
        upstream.script(Step(status=400, raw=CONTENT_POLICY_VIOLATION))
        r = gw.chat(model="assistant")

        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "content_policy_violation"
        assert r.headers["x-turnout-failure"] == "client_error"
        assert r.headers["x-should-retry"] == "false"
        assert len(upstream.requests) == 1 and other.requests == []
