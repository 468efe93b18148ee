"""The README's quick start for turnout.testing runs as written: record, replay, a fault, trials."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quickstart() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(
        r"<!-- toolkit-quickstart -->\n```python\n(.*?)```\n<!-- /toolkit-quickstart -->",
        text,
        re.S,
    )
    assert found, "the README lost its toolkit quick start"
    return found.group(1)


def pytest_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "test_agent.py", "-p", "no:cacheprovider", "-q", *args],
        cwd=cwd, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_the_readme_quick_start_records_then_replays_under_xdist(tmp_path: Path) -> None:
    (tmp_path / "test_agent.py").write_text(quickstart())
    recorded = pytest_run(tmp_path, "--turnout-record-mode=once")
    assert "3 passed" in recorded.stdout, recorded.stdout[-3000:] + recorded.stderr[-2000:]
    cassettes = sorted(p.name for p in (tmp_path / "cassettes" / "test_agent").iterdir())
    assert cassettes == ["test_a_429_is_retried_by_turnout.json", "test_answers.json"]

    replayed = pytest_run(tmp_path, "-n", "2", "--turnout-report=trials.json")
    assert "3 passed" in replayed.stdout, replayed.stdout[-3000:] + replayed.stderr[-2000:]
    assert "turnout trials" in replayed.stdout
    [trials] = json.loads((tmp_path / "trials.json").read_text())["tests"]
    assert trials["name"] == "test_agent.py::test_usually_answers" and trials["n"] == 10
