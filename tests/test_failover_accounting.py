"""What failed and retried attempts cost, and the client's max_tokens as a ceiling."""

from __future__ import annotations

from collections.abc import Callable

from failover_helpers import TEXT, config, prefix, record, stream_chat
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

Factory = Callable[[str], RunningGateway]
RETRY = "backoff: {base_s: 0.01, max_s: 2.0}, on_truncation: retry, max_attempts: 3"


def test_a_broken_stream_without_usage_counts_what_was_relayed(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config({"a": (upstream, "")}))
    upstream.script(Step(content=TEXT, break_after_chunks=40))
    got = stream_chat(gw)

    assert got.error is not None  # nowhere to continue: the stream ends with an error event
    assert got.text == prefix(40)
    rec = record(gw, got.request_id)
    assert rec["outcome"] == "failed_upstream"
    (attempt,) = rec["attempt_log"]
    assert attempt["error"] == "broken_stream"
    assert 36 <= attempt["completion_tokens"] <= 41  # one relayed chunk, one token


def test_a_json_answer_says_its_tokens_and_cost_over_all_attempts(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    price = "price: {input_per_mtok: 1.0, output_per_mtok: 2.0}"
    gw = gateway_factory(config({"a": (upstream, price)}, lifecycle=RETRY))
    upstream.script(
        Step(finish_reason="length", prompt_tokens=100, completion_tokens=50),
        Step(prompt_tokens=100, completion_tokens=30),
    )
    r = gw.chat(model="assistant")

    assert r.status_code == 200, r.text
    assert r.headers["x-turnout-attempts"] == "2"
    assert int(r.headers["x-turnout-total-tokens"]) == 100 + 50 + 100 + 30
    expected_cost = (200 * 1.0 + 80 * 2.0) / 1e6
    assert abs(float(r.headers["x-turnout-cost-usd"]) - expected_cost) < 1e-9


def test_truncation_retry_never_asks_for_more_than_the_clients_max_tokens(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    upstream.default = Step(finish_reason="length")
    gw = gateway_factory(config({"a": (upstream, "")}, lifecycle=RETRY))
    r = gw.chat(model="assistant", max_tokens=24)

    assert r.status_code == 200, r.text
    assert r.headers["x-turnout-outcome"] == "truncated"
    asked = [q.max_tokens for q in upstream.requests]
    assert asked and all(n is not None and n <= 24 for n in asked), asked


def test_truncation_retry_without_a_client_limit_sets_and_grows_its_own(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config({"a": (upstream, "")}, lifecycle=RETRY))
    upstream.script(Step(finish_reason="length"))
    r = gw.chat(model="assistant")

    assert r.status_code == 200, r.text
    assert r.headers["x-turnout-outcome"] == "completed"
    first, second = upstream.requests
    assert first.max_tokens is None
    assert second.max_tokens is not None and second.max_tokens > 0
