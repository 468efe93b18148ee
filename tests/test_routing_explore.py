"""A deployment the router knows too little about still gets tried, and what the record says
about every deployment warms the estimates of the next gateway."""

from __future__ import annotations

from pathlib import Path

from gateway_harness import start_gateway
from upstream import ScriptedUpstream, Step

from turnout.config import parse_config
from turnout.gateway import Gateway
from turnout.routing.router import EXPLORE_EVERY, EXPLORE_UNTIL

CONFIG = """
deployments:
  edge: {kind: embedded, model: smollm2-135m, tags: [local], hourly_usd: 0.01}
  cloud: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m, tags: [cloud],
          price: {input_per_mtok: 5, output_per_mtok: 15}}
models:
  smart: {deployments: [cloud, edge], routing: policy, privacy: block}
  ordered: {deployments: [edge, cloud], routing: ordered}
"""
BODY = {"model": "smart", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def _chosen(gw: Gateway, body: dict, headers: dict | None = None, model: str = "smart") -> str:
    m = gw.models[model]
    decision = gw.router.plan(m, gw.router.features(m, body, headers or {}))
    assert decision.chosen is not None
    return decision.chosen


def test_an_unobserved_deployment_gets_every_nth_request_until_it_is_known() -> None:
    gw = Gateway(parse_config(CONFIG, "test"))
    gw.estimates["edge"].observe(total_s=0.2, ttft_s=0.05, completion_tokens=16, prompt_tokens=20)
    first = [_chosen(gw, BODY) for _ in range(EXPLORE_EVERY * 3)]
    assert first.count("cloud") == 3  # the cheap edge is preferred; the cloud is tried now and then
    assert all(c == "cloud" for c in first[EXPLORE_EVERY - 1 :: EXPLORE_EVERY])
    m = gw.models["smart"]
    decision = gw.router.plan(m, gw.router.features(m, BODY, {}))
    for _ in range(EXPLORE_EVERY - 1):
        decision = gw.router.plan(m, gw.router.features(m, BODY, {}))
    assert decision.rule.startswith("explore: cloud has 0 of")  # explained, not silent
    for _ in range(EXPLORE_UNTIL):  # the cloud served and was observed
        gw.estimates["cloud"].observe(
            total_s=2.0, ttft_s=0.5, completion_tokens=16, prompt_tokens=20
        )
    assert {_chosen(gw, BODY) for _ in range(EXPLORE_EVERY * 3)} == {"edge"}


def test_exploration_respects_budgets_privacy_and_configured_order() -> None:
    gw = Gateway(parse_config(CONFIG, "test"))
    budget = {"x-turnout-latency-budget-ms": "60000"}
    assert {_chosen(gw, BODY, budget) for _ in range(EXPLORE_EVERY * 3)} == {"edge"}
    card = {**BODY, "messages": [{"role": "user", "content": "card 4111 1111 1111 1111"}]}
    assert {_chosen(gw, card) for _ in range(EXPLORE_EVERY * 3)} == {"edge"}
    ordered = {**BODY, "model": "ordered"}
    assert {_chosen(gw, ordered, model="ordered") for _ in range(EXPLORE_EVERY * 3)} == {"edge"}


def test_a_new_gateway_starts_from_what_the_record_says(tmp_path: Path) -> None:
    store = tmp_path / "turnout.db"
    with ScriptedUpstream(default=Step(content="word " * 12)) as cloud:
        config = f"""
deployments:
  cloud: {{kind: openai, base_url: "{cloud.base_url}", model: m, tags: [cloud]}}
models:
  m: {{deployments: [cloud], routing: ordered}}
"""
        first = start_gateway(config, store)
        try:
            for _ in range(3):
                r = first.chat(model="m", messages=[{"role": "user", "content": "hi"}])
                assert r.status_code == 200
        finally:
            first.stop()
        second = start_gateway(config, store)
        try:
            est = second.gateway.estimates["cloud"]
            assert est.output_tokens.count == 3  # warmed before any request of its own
            assert est.service.count >= 3
        finally:
            second.stop()
