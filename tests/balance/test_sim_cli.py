"""`turnout sim` and `turnout emulate` as registered sub-commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from turnout.sim.cli import register


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="turnout")
    register(p.add_subparsers(dest="command", required=True))
    return p


def test_sim_prints_a_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim.json"
    args = parser().parse_args(
        [
            "sim",
            "--preset",
            "cpu-small",
            "--instances",
            "2",
            "--load",
            "0.5",
            "--requests",
            "200",
            "--strategies",
            "round_robin,least_work,oracle",
            "--json",
            str(out),
        ]
    )
    assert args.func(args) == 0
    table = capsys.readouterr().out
    assert "| 50% | least_work |" in table and "| 50% | oracle |" in table
    doc = json.loads(out.read_text())
    assert {r["variant"] for r in doc["rows"]} == {"round_robin", "least_work", "oracle"}
    assert all(r["shed"] == 0 and r["rejected"] == 0 for r in doc["rows"])


def test_emulate_takes_a_preset_and_overrides() -> None:
    from turnout.emulate.cli import profile_of

    args = parser().parse_args(
        ["emulate", "--port", "9", "--preset", "moe-h100", "--max-batch", "8", "--scale", "2"]
    )
    prof = profile_of(args)
    assert prof.max_batch == 8 and prof.experts is not None
    assert prof.step_base_s == pytest.approx(0.006)
