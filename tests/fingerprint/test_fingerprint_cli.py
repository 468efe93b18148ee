"""`turnout fingerprint …` end to end: baseline, check (exit 1 on a change, for CI), report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from turnout.fingerprint import builtin_suite
from turnout.fingerprint.cli import register

PROBES = ("ru-city", "ja-city", "zh-city", "choice-c")  # where the two models differ most


def turnout(*argv: str) -> int:
    """The fingerprint commands as `turnout` would run them."""
    parser = argparse.ArgumentParser(prog="turnout")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "turnout.yaml"
    config.write_text(
        "deployments:\n"
        "  edge: {kind: embedded, model: smollm2-135m, max_concurrency: 2}\n"
        "  other: {kind: embedded, model: gemma3-270m, max_concurrency: 2}\n"
        "models:\n"
        "  local: {deployments: [edge]}\n"
        f'store: {{url: "sqlite:///{tmp_path / "turnout.db"}"}}\n'
    )
    suite = tmp_path / "suite.yaml"
    probes = [{"id": p.id, "prompt": p.prompt} for p in builtin_suite().probes if p.id in PROBES]
    suite.write_text(
        yaml.safe_dump(
            {"samples_per_probe": 4, "sampling": {"max_tokens": 12}, "probes": probes},
            allow_unicode=True,
        )
    )
    return config, suite


def test_baseline_check_and_report_from_the_command_line(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, suite = setup
    common = ["--config", str(config), "--suite", str(suite), "--quiet"]
    assert turnout("fingerprint", "baseline", "edge", *common, "--seed", "1") == 0
    assert "baseline 'edge'" in capsys.readouterr().out

    # The name `edge` now answered by another model: a CI step would fail here.
    html = tmp_path / "report.html"
    code = turnout(
        "fingerprint", "check", "other", "--baseline", "edge", *common, "--seed", "2",
        "--json", "--html", str(html),
    )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["changed"] and out["baseline"] == "edge"
    assert {e["name"] for e in out["evidence"]} >= {"mmd", "typicality", "length", "metadata"}
    page = html.read_text()
    assert "CHANGED" in page and "data:image/png;base64," in page
    assert html.with_suffix(".png").read_bytes().startswith(b"\x89PNG")

    assert turnout("fingerprint", "report", "other", "--config", str(config), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checks"][-1]["changed"] and report["since"] is not None

    assert turnout("fingerprint", "baseline", "--list", "--config", str(config)) == 0
    assert "edge" in capsys.readouterr().out


def test_errors_exit_2_so_that_1_always_means_a_change(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup
    assert turnout("fingerprint", "check", "edge", "--config", str(config), "--quiet") == 2
    assert "no baseline named 'edge'" in capsys.readouterr().err
    assert turnout("fingerprint", "probe", "nowhere", "--config", str(config)) == 2
