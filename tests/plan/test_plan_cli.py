"""`turnout plan` on the command line: table, JSON and plot."""

import json
from pathlib import Path

import pytest

from turnout.cli import main


def test_plan_prints_a_table_with_memory_throughput_and_cost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plan", "--model", "mixtral-8x7b", "--gpu", "h100-sxm", "--rps", "5",
                 "--cloud-input-price", "0.15", "--cloud-output-price", "0.6"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "mixtral-8x7b on 2 × h100-sxm" in out
    assert "128.0 KiB" in out
    assert "break-even utilisation" in out


def test_plan_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--model", "llama-3.1-8b", "--gpu", "l4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kv_bytes_per_token"] == 131072
    assert data["fits"] is True


def test_plan_writes_a_png_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "plan.png"
    assert main(["plan", "--plot", str(png), "--cloud-input-price", "0.15",
                 "--cloud-output-price", "0.6"]) == 0  # fmt: skip
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_reads_model_facts_from_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    facts = tmp_path / "m.yaml"
    facts.write_text(
        "name: tiny\ntotal_params: 1.0e9\nactive_params: 1.0e9\nlayers: 16\n"
        "attention_heads: 16\nkv_heads: 4\nhead_dim: 64\n"
    )
    assert main(["plan", "--model-file", str(facts), "--gpu", "l4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kv_bytes_per_token"] == 16 * 4 * 64 * 2 * 2


def test_plan_refuses_a_model_file_with_unknown_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    facts = tmp_path / "m.yaml"
    facts.write_text("name: x\nparams: 1\n")
    assert main(["plan", "--model-file", str(facts)]) == 2
    assert "unknown fields ['params']" in capsys.readouterr().err


def test_plan_lists_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--list"]) == 0
    out = capsys.readouterr().out
    assert "deepseek-v3" in out and "h100-sxm" in out


def test_unknown_preset_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--gpu", "tpu-v9"]) == 1
    assert "unknown GPU 'tpu-v9'" in capsys.readouterr().err
