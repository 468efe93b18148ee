"""The example agent's own suite (examples/support_agent) passes: all three tiers, in CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_agent_suite_passes_offline_replays_faults_and_a_live_trial(
    tmp_path: Path,
) -> None:
    report = tmp_path / "trials.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "examples/support_agent", "-p", "no:cacheprovider",
         "-q", f"--turnout-report={report}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "7 passed" in done.stdout
    [live] = json.loads(report.read_text())["tests"]
    assert live["mode"] == "sprt" and live["verdict"] == "PASS"
