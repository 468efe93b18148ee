"""The gate on real models and real loopback upstreams: a null migration of 60 requests reaches
PASS, with and without --sequential; a candidate whose every call fails loses every check that
needs an answer; one that echoes the prompt matches nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from migrate_helpers import EchoUpstream, Traffic, config_text
from upstream import ScriptedUpstream, Step

from turnout.cli import main
from turnout.migrate.replay import Replay

ANSWER_CHECKS = (
    "valid", "semantic_match", "format_match", "language_match", "refusal_match", "not_truncated",
)  # fmt: skip


@pytest.fixture
def failing() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(Step(status=503, content=None)) as up:
        yield up


@pytest.fixture
def echo() -> Iterator[EchoUpstream]:
    with EchoUpstream() as up:
        yield up


def with_candidate(traffic: Traffic, tmp_path: Path, name: str, base_url: str) -> Traffic:
    """The traffic's config with one more deployment: an OpenAI-compatible upstream on loopback."""
    extra = f"  {name}: {{kind: openai, base_url: {base_url}, model: upstream-model}}\n"
    config = tmp_path / "turnout.yaml"
    config.write_text(config_text(traffic.store, extra))
    return Traffic(config, traffic.store)


def migrate(
    traffic: Traffic, tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any], Replay]:
    out = tmp_path / "pairs.jsonl"
    code = main(
        ["migrate", "replay", "--config", str(traffic.config), "--out", str(out), "--quiet",
         "--json", "--fail-on", "gate", *args]
    )  # fmt: skip
    return code, json.loads(capsys.readouterr().out), Replay.read(out)


def verdicts(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["check"]: v for v in data["gate"]["verdicts"]}


def test_a_null_migration_of_60_requests_passes(
    traffic60: Traffic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data, replay = migrate(traffic60, tmp_path, capsys, "--from", "edge", "--to", "edge",
                                 "--seed", "1")  # fmt: skip
    assert code == 0 and len(replay.pairs) == 60
    assert data["gate"]["outcome"] == "pass", data["gate"]["summary"]
    # the same model, the same seed: byte-identical but for llama.cpp's rare reordering of sums
    assert data["rates"]["candidate"]["exact"] >= 0.95
    # json_match covers only the 9 JSON requests: too few to decide, reported and not counted
    json_match = verdicts(data)["json_match"]
    assert json_match["n"] == 9 and json_match["detail"]["too_few"]
    assert data["gate"]["released"] == ["json_match"]
    assert "too few pairs to decide" in data["gate"]["summary"]


def test_a_sequential_null_migration_passes_at_its_last_look(
    traffic60: Traffic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data, replay = migrate(traffic60, tmp_path, capsys, "--from", "edge", "--to", "edge",
                                 "--seed", "1", "--sequential")  # fmt: skip
    assert code == 0 and data["gate"]["outcome"] == "pass", data["gate"]["summary"]
    looks = data["replay"]["sequential"]["looks"]
    assert [k["pairs"] for k in looks] == [15, 30, 60]
    assert [k["outcome"] for k in looks] == ["inconclusive", "inconclusive", "pass"]
    assert sum(k["alpha"] for k in looks) == pytest.approx(0.05)
    assert data["gate"]["alpha"] == pytest.approx(looks[-1]["alpha"])
    # the pairs file keeps its looks: judging it again uses the last look's level
    assert replay.sequential is not None and len(replay.pairs) == 60


def test_a_sequential_replay_stops_at_the_first_fail(
    traffic60: Traffic, echo: EchoUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traffic = with_candidate(traffic60, tmp_path, "echo", echo.base_url)
    code, data, replay = migrate(traffic, tmp_path, capsys, "--from", "edge", "--to", "echo",
                                 "--seed", "1", "--sequential")  # fmt: skip
    assert code == 1 and data["gate"]["outcome"] == "fail"
    assert len(replay.pairs) < 60  # the rest were never sent
    assert [k["outcome"] for k in data["replay"]["sequential"]["looks"]][-1] == "fail"


def test_a_candidate_whose_calls_all_fail_loses_every_check_that_needs_an_answer(
    traffic: Traffic, failing: ScriptedUpstream, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    broken = with_candidate(traffic, tmp_path, "broken", failing.base_url)
    code, data, replay = migrate(broken, tmp_path, capsys, "--from", "local", "--to", "broken")
    assert code == 1 and data["gate"]["outcome"] == "fail"
    assert all(p.candidate.error for p in replay.pairs)
    by_check = verdicts(data)
    for check in ANSWER_CHECKS:
        v = by_check[check]
        assert v["detail"]["candidate_passes"] == 0, check
        assert v["detail"]["losses"] == v["detail"]["old_passes"], check
        assert v["outcome"] != "pass", check
    assert by_check["semantic_match"]["outcome"] == "fail"
    assert by_check["valid"]["outcome"] == "fail"
    assert {"latency_s", "chars"} <= set(data["skipped_checks"])  # nothing answered to compare


def test_a_candidate_that_echoes_the_prompt_matches_nothing(
    traffic: Traffic, echo: EchoUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    echoing = with_candidate(traffic, tmp_path, "echo", echo.base_url)
    code, data, replay = migrate(echoing, tmp_path, capsys, "--from", "local", "--to", "echo")
    assert code == 1
    assert replay.pairs[0].candidate.text == replay.pairs[0].request["messages"][-1]["content"]
    rates = data["rates"]
    assert rates["candidate"]["echo"] == 1.0 and rates["candidate"]["semantic_match"] == 0.0
    assert rates["old"]["echo"] < 0.5
    assert "semantic_match" in data["gate"]["failed"]
    assert data["calibration"]["interval_95"][1] >= data["calibration"]["threshold"]
