"""Config files: defaults written down once, and errors that name file, key path and reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from turnout.config import ConfigError, default_config, load_config, parse_config

GOOD = """
deployments:
  edge: {kind: embedded, model: smollm2-135m, tags: [local]}
  cloud-a:
    kind: openai
    base_url: http://127.0.0.1:9001/v1
    model: gpt-4o-mini
    api_key_env: CLOUD_A_KEY
    price: {input_per_mtok: 0.15, output_per_mtok: 0.60}
    timeouts: {connect_s: 2, first_token_s: 20, idle_s: 20, total_s: 120}
models:
  assistant:
    deployments: [cloud-a, edge]
    routing: ordered
    lifecycle:
      max_attempts: 3
      backoff: {base_s: 0.2, max_s: 5.0}
      on_truncation: retry
      on_invalid_output: retry
      max_reasks: 1
      budget: {max_total_tokens: 20000, max_cost_usd: 0.05}
"""


def test_a_full_config_parses_into_typed_values() -> None:
    cfg = parse_config(GOOD, "good.yaml")
    cloud = cfg.deployments["cloud-a"]
    assert cloud.price.cost(1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cloud.timeouts.first_token_s == 20.0
    assert cfg.models["assistant"].deployments == ("cloud-a", "edge")
    assert cfg.models["assistant"].lifecycle.budget.max_cost_usd == 0.05
    assert cfg.server.port == 8700 and cfg.store.record_bodies == "full"


def test_empty_config_is_the_embedded_default() -> None:
    cfg = parse_config("", "empty.yaml")
    assert cfg.models == default_config().models
    assert cfg.deployments["edge"].kind == "embedded"


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("server: {port: 99999}", "server.port", "TCP port"),
        ("server: {port: true}", "server.port", "boolean"),
        ("store: {record_bodies: some}", "store.record_bodies", "full, redacted, none"),
        ("deployments: {a: {kind: magic, model: m}}", "deployments.a.kind", "one of"),
        ("deployments: {a: {kind: openai, model: m}}", "deployments.a.base_url", "missing"),
        (
            "deployments: {a: {kind: openai, base_url: ftp://x, model: m}}",
            "deployments.a.base_url",
            "http://",
        ),
        (
            "deployments: {a: {kind: embedded, model: m, max_concurrency: 0}}",
            "deployments.a.max_concurrency",
            "≥ 1",
        ),
        (
            "deployments: {a: {kind: embedded, model: m, colour: red}}",
            "deployments.a.colour",
            "unknown key",
        ),
        (
            "deployments: {a: {kind: embedded, model: m}}\nmodels: {x: {deployments: [b]}}",
            "models.x.deployments[0]",
            "unknown deployment 'b'",
        ),
        (
            "deployments: {a: {kind: embedded, model: m}}\n"
            "models: {x: {deployments: [a], lifecycle: {on_truncation: maybe}}}",
            "models.x.lifecycle.on_truncation",
            "accept, retry, fail",
        ),
        (
            "deployments: {a: {kind: embedded, model: m}}\n"
            "models: {x: {deployments: [a], lifecycle: {budget: {max_cost_usd: -1}}}}",
            "models.x.lifecycle.budget.max_cost_usd",
            "≥ 0",
        ),
        ("models: [1, 2]", "models", "mapping"),
    ],
)
def test_errors_name_the_key_path(text: str, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.yaml")
    assert info.value.source == "bad.yaml"
    assert info.value.path == path
    assert words in info.value.message
    assert str(info.value).startswith(f"bad.yaml: {path}: ")


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("server:\n  port: [8700\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert "invalid YAML: line" in str(info.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "turnout", *args], capture_output=True, text=True, timeout=60
    )


def test_config_check_command(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    ok = _cli("config", "check", str(good))
    assert ok.returncode == 0 and "ok" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("max_reasks: 1", "max_reasks: many"))
    res = _cli("config", "check", str(bad))
    assert res.returncode == 2
    assert f"{bad}: models.assistant.lifecycle.max_reasks: expected an integer" in res.stderr
    missing = _cli("config", "check", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "file not found" in missing.stderr
