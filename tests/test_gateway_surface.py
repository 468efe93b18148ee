"""Cancellation, health, models and metrics: the rest of the HTTP surface."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

Factory = Callable[[str], RunningGateway]


@pytest.fixture
def gw(upstream: ScriptedUpstream, gateway_factory: Factory) -> RunningGateway:
    return gateway_factory(
        f"""
deployments:
  a: {{kind: openai, base_url: "{upstream.base_url}", model: m, price: {{output_per_mtok: 1}}}}
models:
  assistant: {{deployments: [a]}}
  other: {{deployments: [a]}}
"""
    )


def _wait_for_outcome(gw: RunningGateway, outcome: str) -> dict:
    from turnout.store.query import list_requests

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        gw.gateway.writer.flush()
        rows = list_requests(gw.gateway.config.store.url, outcome=outcome)
        if rows:
            return gw.record(rows[0]["id"])
        time.sleep(0.05)
    raise AssertionError(f"no {outcome} record")


def test_client_leaving_cancels_the_request_and_its_upstream_work(
    gw: RunningGateway, upstream: ScriptedUpstream
) -> None:
    upstream.script(Step(delay_s=10))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gw.url}/v1/chat/completions",
            timeout=0.5,
            json={"model": "assistant", "messages": [{"role": "user", "content": "x"}]},
        )
    rec = _wait_for_outcome(gw, "cancelled")
    assert [e["state"] for e in rec["events"]] == ["received", "routed", "attempting", "cancelled"]
    assert rec["attempt_log"][0]["error"] == "cancelled"
    upstream.wait_for_disconnects(1, timeout=5)


def test_client_leaving_mid_stream_cancels(gw: RunningGateway, upstream: ScriptedUpstream) -> None:
    upstream.script(Step(content="a b c d e f g h i j", chunk_delay_s=0.3))
    body = {"model": "assistant", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=5) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if '"content":"a"' in line.replace(" ", ""):
                break
    rec = _wait_for_outcome(gw, "cancelled")
    assert [e["state"] for e in rec["events"]][-2:] == ["streaming", "cancelled"]
    upstream.wait_for_disconnects(1, timeout=5)


def test_health_readiness_and_models(gw: RunningGateway) -> None:
    assert gw.http.get("/healthz").json() == {"status": "ok"}
    ready = gw.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["problems"] == []
    ids = [m["id"] for m in gw.http.get("/v1/models").json()["data"]]
    assert ids == ["assistant", "other"]


def test_metrics_count_outcomes_attempts_tokens_and_cost(
    gw: RunningGateway, upstream: ScriptedUpstream
) -> None:
    upstream.script(Step(status=500), Step(completion_tokens=1000))
    assert gw.chat(model="assistant").status_code == 200
    gw.http.post("/v1/chat/completions", content=b"{")
    text = gw.http.get("/metrics").text
    assert 'turnout_requests_total{model="assistant",outcome="completed"} 1.0' in text
    assert 'turnout_requests_total{model="unknown",outcome="rejected"} 1.0' in text
    assert (
        'turnout_attempts_total{deployment="a",model="assistant",result="server_error"} 1.0' in text
    )
    assert 'turnout_tokens_total{deployment="a",kind="completion",model="assistant"} 1000.0' in text
    assert 'turnout_cost_usd_total{deployment="a",model="assistant"} 0.001' in text
    assert (
        'turnout_request_duration_seconds_count{model="assistant",outcome="completed"} 1.0' in text
    )
    assert "turnout_records_dropped_total 0.0" in text


def test_incoming_trace_context_is_continued(gw: RunningGateway) -> None:
    from gateway_harness import spans_of

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    r = gw.http.post(
        "/v1/chat/completions",
        json={"model": "assistant", "messages": [{"role": "user", "content": "x"}]},
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    spans = spans_of(r.headers["x-turnout-request-id"])
    assert all(f"{s.context.trace_id:032x}" == trace_id for s in spans)
    attempt = spans[1]
    assert attempt.name == "chat m"
    assert attempt.attributes["gen_ai.operation.name"] == "chat"
    assert attempt.attributes["gen_ai.usage.output_tokens"] == 3
    assert attempt.attributes["gen_ai.response.finish_reasons"] == ("stop",)
