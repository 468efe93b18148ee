"""Prompt length in the latency estimate: a CPU model reads a long prompt for seconds before its
first token, and the route has to know it before it sends one there."""

from __future__ import annotations

import pytest

from turnout.config import parse_config
from turnout.gateway import Gateway
from turnout.routing.estimates import DeploymentEstimate

CONFIG = """
deployments:
  edge: {kind: embedded, model: smollm2-135m, tags: [local], hourly_usd: 0.01}
  cloud: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m, tags: [cloud],
          price: {input_per_mtok: 5, output_per_mtok: 15}}
models:
  smart: {deployments: [cloud, edge], routing: policy}
"""
BUDGET = {"x-turnout-latency-budget-ms": "3000"}


def edge_answer(prompt: int, out: int) -> dict[str, float | int]:
    """A CPU model: 6 ms to read each prompt token, 13 ms for each token it writes."""
    ttft = 0.05 + 0.006 * prompt
    return {
        "total_s": ttft + 0.013 * out,
        "ttft_s": ttft,
        "completion_tokens": out,
        "prompt_tokens": prompt,
    }


def test_the_estimate_tells_reading_the_prompt_from_writing_the_answer() -> None:
    est = DeploymentEstimate(remote=False, concurrency=None)
    for k in range(20):
        est.observe(**edge_answer(prompt=(40, 300, 1200, 2500)[k % 4], out=(8, 64, 16)[k % 3]))
    short, _ = est.predict(16, prompt_tokens=50)
    long, long_parts = est.predict(16, prompt_tokens=2000)
    assert long == pytest.approx(0.05 + 0.006 * 2000 + 0.013 * 16, rel=0.05)
    assert short == pytest.approx(0.05 + 0.006 * 50 + 0.013 * 16, rel=0.15)
    assert long_parts["ttft_s"] == pytest.approx(0.05 + 0.006 * 2000 + 0.013, rel=0.05)
    assert long_parts["per_token_s"] == pytest.approx(0.013, rel=0.05)


def test_one_prompt_length_only_keeps_the_prompt_slope_at_its_prior() -> None:
    # Nothing says how prompt length matters yet: the fitted level must not be read as a slope.
    est = DeploymentEstimate(remote=False, concurrency=None)
    for k in range(10):
        est.observe(**edge_answer(prompt=200, out=(8, 64)[k % 2]))
    at_200, _ = est.predict(16, prompt_tokens=200)
    at_400, _ = est.predict(16, prompt_tokens=400)
    assert at_200 == pytest.approx(0.05 + 0.006 * 200 + 0.013 * 16, rel=0.05)
    assert 0 < at_400 - at_200 < 0.1  # the prior's 0.2 ms a token, not the edge's 6


def test_a_long_prompt_leaves_the_edge_when_it_would_miss_the_budget() -> None:
    gw = Gateway(parse_config(CONFIG, "test"))
    for k in range(12):
        prompt = (30, 2500)[k % 2]
        gw.estimates["edge"].observe(**edge_answer(prompt, 16))
        # The cloud: 300 ms away, reads prompts fast, writes 16 tokens in 0.3 s.
        gw.estimates["cloud"].observe(
            total_s=0.6 + 0.00002 * prompt,
            ttft_s=0.3 + 0.00002 * prompt,
            completion_tokens=16,
            prompt_tokens=prompt,
        )
    m = gw.models["smart"]

    def chosen(text: str) -> str:
        body = {"model": "smart", "max_tokens": 16, "messages": [{"role": "user", "content": text}]}
        decision = gw.router.plan(m, gw.router.features(m, body, BUDGET))
        assert decision.chosen is not None
        return decision.chosen

    assert chosen("What is the capital of France?") == "edge"  # cheap and fast enough
    long_text = "The quarterly report lists revenue by region and product line. " * 130
    assert chosen(long_text) == "cloud"  # ~2,000 tokens: 12 s of reading on the edge
