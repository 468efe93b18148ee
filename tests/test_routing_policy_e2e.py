"""Policy routing end to end: the embedded model as edge, a loopback server as cloud."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

Factory = Callable[[str], RunningGateway]


def config(cloud_url: str, routing_extra: str = "") -> str:
    return f"""
deployments:
  edge: {{kind: embedded, model: smollm2-135m, tags: [local], hourly_usd: 0.01, max_concurrency: 1}}
  cloud:
    kind: openai
    base_url: "{cloud_url}"
    model: gpt-x
    tags: [cloud]
    price: {{input_per_mtok: 5, output_per_mtok: 15}}
    rtt_probe_s: 0.05
models:
  via-cloud: {{deployments: [cloud], routing: policy, objective: cloud_only, privacy: off}}
  via-edge: {{deployments: [edge], routing: policy, objective: local_only}}
  smart: {{deployments: [cloud, edge], routing: policy, privacy: block {routing_extra}}}
"""


def _ask(gw: RunningGateway, model: str, budget_ms: int | None = None) -> tuple[str, str, dict]:
    headers = {} if budget_ms is None else {"x-turnout-latency-budget-ms": str(budget_ms)}
    r = gw.http.post(
        "/v1/chat/completions",
        headers=headers,
        json={
            "model": model,
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "Say hi."}],
        },
    )
    assert r.status_code == 200, r.text
    rec = gw.record(r.headers["x-turnout-request-id"])
    return r.headers["x-turnout-deployment"], r.headers["x-turnout-route"], rec


def _wait_rtt(gw: RunningGateway, target: float) -> float:
    est = gw.gateway.estimates["cloud"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if abs(est.rtt() - target) < max(0.02, 0.15 * target):
            return est.rtt()
        time.sleep(0.05)
    raise AssertionError(f"rtt estimate {est.rtt():.3f}s did not converge on {target}s")


def test_route_follows_price_budget_and_the_network(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    upstream.default = Step(content="hi there", completion_tokens=2)
    gw = gateway_factory(config(upstream.base_url))
    for _ in range(3):  # both deployments get traffic, so both estimates are learned
        assert _ask(gw, "via-cloud")[0] == "cloud"
        assert _ask(gw, "via-edge")[0] == "edge"
    _wait_rtt(gw, 0.0)

    # No latency budget: the cheapest, owned hardware.
    dep, route, rec = _ask(gw, "smart")
    assert dep == "edge" and "cheapest of 2" in route
    routed = rec["events"][1]["attrs"]
    assert routed["chosen"] == "edge" and routed["objective"] == "cheapest_within_slo"
    by_name = {c["deployment"]: c for c in routed["candidates"]}
    assert by_name["cloud"]["cost_usd"] > by_name["edge"]["cost_usd"]

    # A budget only the cloud meets (the loopback cloud answers at once).
    edge_ms = by_name["edge"]["latency_ms"]
    budget = max(1, int(edge_ms / 2))
    dep, route, _ = _ask(gw, "smart", budget)
    assert dep == "cloud" and f"within {budget} ms" in route

    # The network to the cloud slows down: the probe sees it and the edge becomes the choice.
    upstream.rtt_s = 0.6
    assert _wait_rtt(gw, 0.6) > 0.5
    dep, route, rec = _ask(gw, "smart", int(edge_ms * 3) + 100)
    assert dep == "edge", route
    cloud = {c["deployment"]: c for c in rec["events"][1]["attrs"]["candidates"]}["cloud"]
    assert cloud["latency_ms"] >= 500  # the slower network is in the prediction


def test_bad_latency_budget_is_rejected(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url))
    r = gw.http.post(
        "/v1/chat/completions",
        headers={"x-turnout-latency-budget-ms": "soon"},
        json={"model": "smart", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "x-turnout-latency-budget-ms"
    assert gw.record(r.headers["x-turnout-request-id"])["outcome"] == "rejected"


def test_cascade_escalates_when_the_cheap_answer_fails_its_checks(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    with ScriptedUpstream() as strong:
        gw = gateway_factory(f"""
deployments:
  cheap:
    {{kind: openai, base_url: "{upstream.base_url}", model: small, price: {{output_per_mtok: 1}}}}
  strong:
    {{kind: openai, base_url: "{strong.base_url}", model: big, price: {{output_per_mtok: 30}}}}
models:
  answer:
    deployments: [cheap, strong]
    routing: cascade
    cascade: {{must_match: "[0-9]+"}}
""")
        upstream.script(Step(content="I am not sure."), Step(content="It is 42."))
        strong.script(Step(content="It is 41."))
        escalated = gw.chat(model="answer")
        kept = gw.chat(model="answer")
        rec = gw.record(escalated.headers["x-turnout-request-id"])
        assert escalated.json()["choices"][0]["message"]["content"] == "It is 41."
        assert [e["state"] for e in rec["events"]] == [
            "received",
            "routed",
            "attempting",
            "validating",
            "fallback",
            "attempting",
            "validating",
            "completed",
        ]
        assert rec["events"][4]["attrs"]["reason"] == "escalate"
        assert [(a["deployment"], a.get("error")) for a in rec["attempt_log"]] == [
            ("cheap", "cascade_check"),
            ("strong", None),
        ]
        assert rec["attempt_log"][0]["cost_usd"] > 0 and rec["attempt_log"][1]["cost_usd"] > 0
        assert kept.headers["x-turnout-deployment"] == "cheap"
        assert kept.headers["x-turnout-attempts"] == "1"


def test_requests_waiting_at_the_gate_count_in_the_predicted_latency(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    """A deployment whose slots are full and whose gate holds a queue is predicted slow."""
    with ScriptedUpstream(Step(content="far", completion_tokens=4)) as far:
        gw = gateway_factory(f"""
deployments:
  near:
    {{kind: openai, base_url: "{upstream.base_url}", model: m, tags: [local],
     max_concurrency: 1, hourly_usd: 0.01, rtt_probe_s: 0}}
  far:
    {{kind: openai, base_url: "{far.base_url}", model: m, tags: [cloud],
     price: {{output_per_mtok: 15}}, rtt_probe_s: 0}}
models:
  via-near: {{deployments: [near], routing: ordered}}
  via-far: {{deployments: [far], routing: ordered}}
  smart: {{deployments: [far, near], routing: policy}}
""")
        upstream.default = Step(content="near", completion_tokens=4, delay_s=0.3)
        for _ in range(2):
            assert gw.chat(model="via-near", max_tokens=8).status_code == 200
            assert gw.chat(model="via-far", max_tokens=8).status_code == 200
        unloaded, _ = gw.gateway.estimates["near"].predict(8)
        budget_ms = int(unloaded * 1000 * 2.5)  # near fits, idle; not behind four others

        upstream.default = Step(content="busy", completion_tokens=4, delay_s=1.5)
        blockers = [
            threading.Thread(target=gw.chat, kwargs={"model": "via-near", "max_tokens": 8})
            for _ in range(4)
        ]
        for t in blockers:
            t.start()
        est = gw.gateway.estimates["near"]
        deadline = time.monotonic() + 10
        while (est.in_flight, est.queued) != (1, 3) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (est.in_flight, est.queued) == (1, 3)
        r = gw.http.post(
            "/v1/chat/completions",
            headers={"x-turnout-latency-budget-ms": str(budget_ms)},
            json={
                "model": "smart",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        for t in blockers:
            t.join()
        assert r.status_code == 200, r.text
        assert r.headers["x-turnout-deployment"] == "far", r.headers["x-turnout-route"]
        rec = gw.record(r.headers["x-turnout-request-id"])
        near = {c["deployment"]: c for c in rec["events"][1]["attrs"]["candidates"]}["near"]
        assert near["latency_ms"] >= 4 * unloaded * 1000 * 0.9  # one running, three waiting
        assert est.queued == 0


def test_owned_hardware_is_priced_in_the_record(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    """An edge attempt costs the slot-time it held at the configured hourly price, not nothing."""
    upstream.default = Step(content="hi there", completion_tokens=2)
    gw = gateway_factory(config(upstream.base_url))
    _, _, edge = _ask(gw, "via-edge")
    _, _, cloud = _ask(gw, "via-cloud")
    for attempt in edge["attempt_log"]:  # a truncated answer may have been retried
        held_s = attempt["ended"] - attempt["started"]
        assert attempt["cost_usd"] == pytest.approx(0.01 / 3600 * held_s)  # one slot
    assert edge["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in edge["attempt_log"]))
    assert edge["cost_usd"] > 0
    for priced in cloud["attempt_log"]:
        tokens = priced["prompt_tokens"] * 5 + priced["completion_tokens"] * 15
        assert priced["cost_usd"] == pytest.approx(tokens / 1e6)
