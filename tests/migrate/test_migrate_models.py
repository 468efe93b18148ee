"""`turnout migrate` end to end on real models: traffic recorded on SmolLM2-135M, replayed against
itself (must pass), Gemma 3 270M, a changed system prompt and changed sampling (must be flagged)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from migrate_helpers import CHATS, COMPLETIONS, Traffic

from turnout.cli import main
from turnout.migrate.replay import Replay

PIRATE = "Always answer like a pirate, with pirate words, and never answer the question."


def migrate(traffic: Traffic, tmp_path: Path, *args: str) -> tuple[int, Path]:
    """`turnout migrate replay … --json --fail-on gate`: (exit code, pairs file)."""
    out = tmp_path / "pairs.jsonl"
    code = main(
        ["migrate", "replay", "--config", str(traffic.config), "--out", str(out), "--quiet",
         "--json", "--fail-on", "gate", *args]
    )  # fmt: skip
    return code, out


def report(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out)


def test_null_migration_is_not_flagged(
    traffic: Traffic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = migrate(traffic, tmp_path, "--from", "text", "--to", "edge")
    data = report(capsys)
    assert code == 0
    assert data["gate"]["outcome"] != "fail" and not data["gate"]["flagged"]
    assert data["metrics"]["pairs"] == len(COMPLETIONS)
    replay = Replay.read(out)
    assert len(replay.pairs) == len(COMPLETIONS)
    assert {p.category for p in replay.pairs} == {"completion"}
    # every verdict states what it rests on
    for v in data["gate"]["verdicts"]:
        assert v["n"] == len(COMPLETIONS) and v["alpha"] == 0.05 and v["margin"] > 0


def test_migration_to_gemma_is_flagged(
    traffic: Traffic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = migrate(traffic, tmp_path, "--from", "text", "--to", "gemma")
    data = report(capsys)
    assert code == 1
    assert {"semantic_match", "semantic_distance"} <= set(data["gate"]["failed"])
    distance = next(v for v in data["gate"]["verdicts"] if v["check"] == "semantic_distance")
    assert distance["ci"][0] > 1.2  # the candidate strays further than the margin, surely
    rates = data["rates"]
    assert rates["candidate"]["similarity"] < rates["old"]["similarity"]
    assert data["worst"] and data["worst"][0]["lost"]
    assert data["calibration"]["threshold"] < 1.0


def test_a_changed_system_prompt_is_flagged(
    traffic: Traffic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = migrate(traffic, tmp_path, "--from", "local", "--to", "edge", "--system", PIRATE)
    data = report(capsys)
    assert code == 1 and data["gate"]["flagged"]
    replay = Replay.read(out)
    assert len(replay.pairs) == len(CHATS)
    assert replay.overrides["system"] == PIRATE
    # the old model got the recorded system prompt, the candidate the new one
    assert replay.pairs[0].request["messages"][0]["content"] != PIRATE


def test_changed_sampling_is_flagged(
    traffic: Traffic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = migrate(
        traffic, tmp_path, "--from", "text", "--to", "edge", "--set", "temperature=1.5",
        "--seed", "3",
    )  # fmt: skip
    data = report(capsys)
    assert code == 1 and "semantic_match" in data["gate"]["failed"]


def test_report_rereads_a_replay_with_html_plots_and_other_thresholds(
    traffic: Traffic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = migrate(traffic, tmp_path, "--from", "text", "--to", "edge", "--sample", "6",
                           "--seed", "1")  # fmt: skip
    capsys.readouterr()
    assert code == 0 and len(Replay.read(out).pairs) == 6
    html = tmp_path / "report.html"
    assert main(["migrate", "report", str(out), "--html", str(html)]) == 0
    page = html.read_text()
    assert "data:image/png;base64," in page and "Gate:" in page and "Checks" in page
    assert "text → edge" in capsys.readouterr().out
    # an impossible bar: any pair counts as a failure of the condition
    assert main(["migrate", "report", str(out), "--json", "--fail-on", "pairs>1"]) == 1
    assert report(capsys)["fail_on"] == ["pairs>1: pairs is 6"]


def test_the_budget_stops_the_replay_with_complete_pairs(
    traffic: Traffic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = migrate(
        traffic, tmp_path, "--from", "text", "--to", "priced", "--budget-usd", "0.1",
        "--concurrency", "2",
    )  # fmt: skip
    capsys.readouterr()
    assert code in (0, 1)
    replay = Replay.read(out)
    assert 0 < len(replay.pairs) < len(COMPLETIONS)
    assert "budget" in replay.note and replay.cost_usd <= 0.1
    assert all(p.candidate.cost_usd > 0 for p in replay.pairs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "nosuch", "--to", "edge"], "--from 'nosuch': no such model or deployment"),
        (["--from", "text", "--to", "nosuch"], "--to 'nosuch': no such model or deployment"),
        (["--from", "text", "--to", "edge", "--since", "yesterday-ish"], "--since 'yesterday-ish'"),
        (["--from", "text", "--to", "edge", "--since", "2100-01-01"], "no recorded requests"),
        (["--from", "text", "--to", "edge", "--sample", "0"], "--sample 0"),
        (["--from", "text", "--to", "edge", "--outcome", "done"], "--outcome done"),
        (["--from", "text", "--to", "edge", "--fail-on", "speed<2"], "--fail-on 'speed<2'"),
        (["--from", "text", "--to", "edge", "--set", "temperature"], "--set 'temperature'"),
        (["--from", "text", "--to", "edge", "--alpha", "0.9"], "--alpha 0.9"),
    ],
)
def test_bad_input_is_refused_with_exit_2(
    traffic: Traffic,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "pairs.jsonl"
    argv = ["migrate", "replay", "--config", str(traffic.config), "--out", str(out), *args]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_missing_or_foreign_replay_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "report", str(tmp_path / "none.jsonl")]) == 2
    assert "no replay file" in capsys.readouterr().err
    other = tmp_path / "other.jsonl"
    other.write_text('{"hello": 1}\n')
    assert main(["migrate", "report", str(other)]) == 2
    assert "not a turnout replay file" in capsys.readouterr().err
