"""The `shadow:` and `canary:` keys: defaults, and errors that name the key path."""

from __future__ import annotations

import pytest

from turnout.config import ConfigError, parse_config

BASE = """
deployments:
  a: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}
  b: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}
models:
  m: {deployments: [a], %s}
"""


def test_shadow_and_canary_parse_with_their_defaults() -> None:
    cfg = parse_config(
        BASE % "shadow: {deployment: b, budget_usd: 2}, canary: {deployment: b, stages: [10, 100]}"
    )
    model = cfg.models["m"]
    assert model.shadow is not None and model.canary is not None
    assert (model.shadow.fraction, model.shadow.budget_usd, model.shadow.max_in_flight) == (
        0.1,
        2.0,
        8,
    )
    assert model.canary.stages == (10.0, 100.0)
    assert model.canary.gate.alpha == 0.05 and model.canary.min_requests_per_stage == 100
    assert parse_config(BASE % "routing: ordered").models["m"].shadow is None


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("shadow: {fraction: 0.1}", "models.m.shadow.deployment", "missing"),
        ("shadow: {deployment: c}", "models.m.shadow.deployment", "unknown deployment 'c'"),
        ("shadow: {deployment: b, fraction: 1.5}", "models.m.shadow.fraction", "between 0 and 1"),
        ("shadow: {deployment: b, budget_usd: -1}", "models.m.shadow.budget_usd", "≥ 0"),
        ("shadow: {deployment: b, max_in_flight: 0}", "models.m.shadow.max_in_flight", "≥ 1"),
        ("shadow: {deployment: b, fractoin: 0.2}", "models.m.shadow.fractoin", "unknown key"),
        ("shadow: 0.1", "models.m.shadow", "expected a mapping"),
        ("canary: {deployment: a}", "models.m.canary.deployment", "already serves"),
        ("canary: {deployment: b, stages: []}", "models.m.canary.stages", "at least one"),
        ("canary: {deployment: b, stages: [5, 5]}", "models.m.canary.stages[1]", "increase"),
        ("canary: {deployment: b, stages: [150]}", "models.m.canary.stages[0]", "at most 100"),
        ("canary: {deployment: b, stages: [x]}", "models.m.canary.stages[0]", "a number"),
        (
            "canary: {deployment: b, min_requests_per_stage: 50, max_requests_per_stage: 10}",
            "models.m.canary.max_requests_per_stage",
            "≥ min_requests_per_stage",
        ),
        ("canary: {deployment: b, gate: {alpha: 0.5}}", "models.m.canary.gate.alpha", "0.5"),
        (
            "canary: {deployment: b, gate: {latency_margin: 0}}",
            "models.m.canary.gate.latency_margin",
            "> 0",
        ),
        (
            "canary: {deployment: b, gate: {success_margin: 1}}",
            "models.m.canary.gate.success_margin",
            "below 1",
        ),
        ("canary: {deployment: b, gate: {p: 1}}", "models.m.canary.gate.p", "unknown key"),
    ],
)
def test_bad_migration_settings_name_their_key_path(text: str, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BASE % text, "t.yaml")
    assert err.value.path == path
    assert words in err.value.message
