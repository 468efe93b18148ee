"""What the migration report tells its reader, on replays built by hand (no model runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from turnout.cli import main
from turnout.config import DeploymentConfig, Price
from turnout.migrate.cli import warn_unpriced
from turnout.migrate.records import Answer
from turnout.migrate.replay import Pair, Replay
from turnout.migrate.sequential import look_level, schedule, sequential_header


def identical_replay(n: int) -> Replay:
    pairs = []
    for i in range(n):
        text = f"The answer to question {i} is {i + 1}."
        request = {"messages": [{"role": "user", "content": f"What is {i} plus one?"}]}
        answers = [Answer(text, finish_reason="stop", latency_s=0.4 + i / 1000) for _ in range(3)]
        pairs.append(Pair(str(i), "local", "edge", "chat", "chat", request, *answers))
    return Replay("edge", "edge", 0.0, pairs=pairs)


def report(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["migrate", "report", str(path), "--json", *args]) in (0, 1)
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_a_sequential_replay_is_judged_again_at_its_last_looks_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replay = identical_replay(60)
    looks = [
        {"pairs": n, "alpha": look_level(0.05, n, p, 60), "outcome": "inconclusive", "summary": ""}
        for n, p in zip(schedule(60), [0, 15, 30], strict=True)
    ]
    replay.sequential = sequential_header(60, 10, [])
    replay.sequential["looks"] = looks
    path = tmp_path / "seq.jsonl"
    replay.write(path)
    gate = report(path, capsys)["gate"]
    assert isinstance(gate, dict)
    assert gate["alpha"] == pytest.approx(0.05 * 7 / 8) and gate["outcome"] == "pass"
    plain = tmp_path / "plain.jsonl"
    identical_replay(60).write(plain)
    assert report(plain, capsys)["gate"]["alpha"] == 0.05  # type: ignore[index]


def test_a_small_replay_says_how_many_pairs_a_pass_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "small.jsonl"
    identical_replay(20).write(path)
    assert main(["migrate", "report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "INCONCLUSIVE" in out and "have 20 pairs, need 52" in out
    assert "a PASS needs about 52 pairs" in out
    assert "95% interval" in out
    assert "NOTE: neither arm has a price" in out  # cost unchecked, budget blind


def test_unpriced_arms_are_announced_before_a_replay() -> None:
    free = DeploymentConfig("edge", "embedded", "smollm2-135m")
    paid = DeploymentConfig("cloud", "openai", "m", price=Price(0.15, 0.60))
    both = warn_unpriced(free, free, 2.0)
    assert "deployments.edge.price" in both and "cost check is left out" in both
    assert "--budget-usd 2 cannot stop the replay" in both
    assert "counts as free" in warn_unpriced(free, paid, None)
    assert warn_unpriced(paid, paid, 2.0) == ""
