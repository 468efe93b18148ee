"""The `fingerprint:` section of the main config: validated like every other section, and what
turns the gateway's watch on."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from gateway_harness import start_gateway
from upstream import ScriptedUpstream

from turnout.config import ConfigError, PassiveSettings, WatchTarget, parse_config
from turnout.fingerprint.watch import Watcher

DEPLOYMENTS = """
deployments:
  edge: {kind: embedded, model: smollm2-135m}
models:
  local: {deployments: [edge]}
"""


def test_the_section_parses_into_typed_settings_with_defaults() -> None:
    cfg = parse_config(
        DEPLOYMENTS + "fingerprint:\n  alpha: 0.01\n  deployments: {edge: {samples: 20}}\n"
        "  passive: true\n",
        "fp.yaml",
    )
    fp = cfg.fingerprint
    assert fp.alpha == 0.01 and fp.enabled
    assert fp.targets == (WatchTarget(deployment="edge", baseline="edge", samples=20),)
    assert fp.passive == PassiveSettings()


def test_no_section_means_no_watch() -> None:
    assert not parse_config(DEPLOYMENTS, "fp.yaml").fingerprint.enabled


@pytest.mark.parametrize(
    ("section", "path", "words"),
    [
        ("{colour: red}", "fingerprint.colour", "unknown key"),
        ("{alpha: 2}", "fingerprint.alpha", "between 0 and 1"),
        ("{store: postgres://x}", "fingerprint.store", "sqlite:///"),
        ("{deployments: {ghost: {}}}", "fingerprint.deployments.ghost", "unknown deployment"),
        ("{deployments: {edge: {samples: 1}}}", "fingerprint.deployments.edge.samples", "≥ 2"),
        ("{deployments: {edge: {take_out: 1}}}", "fingerprint.deployments.edge.take_out", "bool"),
        ("{deployments: {edge: {every: 5}}}", "fingerprint.deployments.edge.every", "unknown"),
        ("{passive: {warmup: 2}}", "fingerprint.passive.warmup", "≥ 10"),
        ("{passive: 3}", "fingerprint.passive", "mapping"),
        ("[edge]", "fingerprint", "mapping"),
    ],
)
def test_a_bad_key_is_refused_with_its_path(section: str, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(DEPLOYMENTS + f"fingerprint: {section}\n", "bad.yaml")
    assert info.value.path == path
    assert words in info.value.message
    assert str(info.value).startswith(f"bad.yaml: {path}: ")


def test_config_check_accepts_and_refuses_the_section(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(DEPLOYMENTS + "fingerprint: {deployments: {edge: {every_s: 600}}}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEPLOYMENTS + "fingerprint: {deployments: {edge: {every_s: soon}}}\n")
    ok, refused = (
        subprocess.run(
            [sys.executable, "-m", "turnout", "config", "check", str(f)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        for f in (good, bad)
    )
    assert ok.returncode == 0, ok.stderr
    assert "fingerprint watch: edge" in ok.stdout
    assert refused.returncode == 2
    assert f"{bad}: fingerprint.deployments.edge.every_s: expected a number" in refused.stderr


def test_the_watch_starts_from_the_config_section_in_a_served_gateway(tmp_path: Path) -> None:
    # No baseline is stored yet: the first scheduled check (1 s after start) fails, is counted
    # on /metrics, and the watch goes on; that shows it runs inside the served gateway.
    with ScriptedUpstream() as upstream:
        gw = start_gateway(
            f"""
            deployments:
              cloud: {{kind: openai, base_url: "{upstream.base_url}", model: m}}
            models:
              assistant: {{deployments: [cloud]}}
            fingerprint:
              deployments: {{cloud: {{every_s: 1, samples: 4}}}}
            """,
            tmp_path / "turnout.db",
        )
        try:
            watcher = gw.gateway.fingerprint_watch
            assert isinstance(watcher, Watcher)
            assert list(watcher.targets) == ["cloud"]
            line = 'turnout_fingerprint_checks_total{deployment="cloud",result="error"}'
            deadline = time.monotonic() + 60
            while line not in gw.http.get("/metrics").text:
                assert time.monotonic() < deadline, "no scheduled check was made"
                time.sleep(0.1)
            assert all(not t.done() for t in watcher._tasks)  # one bad cycle does not end it
        finally:
            gw.stop()
    assert not watcher._tasks  # stopping the gateway stopped its watch
