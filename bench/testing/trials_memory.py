"""Memory of a trials test that starts its gateway inside the trial (turnout.testing).

Runs one `@pytest.mark.trials(n=N)` test in a pytest subprocess; every trial calls
`turnout_gateway()` (the embedded SmolLM2 model, in that process) and asks one short question.
Each trial writes the process's RSS and which gateway it got; this script shows progress while
the run goes, then prints a table and writes bench/results/testing_trials_memory.{md,json}.

    flock /tmp/turnout-bench.lock .venv/bin/python bench/testing/trials_memory.py --trials 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "results"
COMMAND = "flock /tmp/turnout-bench.lock .venv/bin/python bench/testing/trials_memory.py"

TRIALS_TEST = """
import json, os, pathlib
import pytest

def rss_mib():
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

@pytest.mark.trials(n=int(os.environ["TRIALS"]), threshold=0.0)
def test_agent(turnout_gateway, turnout_trial):
    gw = turnout_gateway()
    with gw.openai() as client:
        client.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "Say hi"}], max_tokens=2)
    with open(os.environ["ROWS"], "a") as out:
        out.write(json.dumps({"trial": turnout_trial.index + 1, "gateway": id(gw),
                              "rss_mib": rss_mib()}) + "\\n")
"""


def rows_of(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="turnout-trials-memory-") as tmp:
        folder = Path(tmp)
        (folder / "test_memory.py").write_text(TRIALS_TEST)
        rows_file = folder / "rows.jsonl"
        env = {**os.environ, "TRIALS": str(args.trials), "ROWS": str(rows_file)}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_memory.py"]
        proc = subprocess.Popen(
            cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        shown = 0
        while proc.poll() is None:
            done = len(rows_of(rows_file))
            if done != shown:
                shown = done
                print(f"trial {done}/{args.trials}", file=sys.stderr, flush=True)
            time.sleep(0.5)
        output = proc.stdout.read() if proc.stdout else ""
        rows = rows_of(rows_file)
    if proc.returncode != 0 or len(rows) != args.trials:
        raise SystemExit(f"the trials run failed:\n{output[-3000:]}")

    first = rows[0]["rss_mib"]
    growth = max(r["rss_mib"] for r in rows) - first
    gateways = len({r["gateway"] for r in rows})
    out = {
        "trials": args.trials,
        "gateways_started": gateways,
        "rss_after_first_trial_mib": first,
        "rss_growth_after_first_trial_mib": growth,
        "rows": rows,
        "command": f"{COMMAND} --trials {args.trials}",
    }
    lines = [
        "# Memory across trials that start their gateway (turnout.testing)",
        "",
        f"One `@pytest.mark.trials(n={args.trials})` test; each trial calls `turnout_gateway()` "
        "(the embedded SmolLM2-135M, in the test process) and asks one question (2 tokens).",
        f"Reproduce: `{out['command']}`",
        "",
        "| trial | RSS MiB | growth since trial 1, MiB |",
        "|---|---|---|",
        *(f"| {r['trial']} | {r['rss_mib']:.0f} | {r['rss_mib'] - first:+.0f} |" for r in rows),
        "",
        f"Gateways started: {gateways} for {args.trials} trials. RSS growth after the first "
        f"trial: {growth:.0f} MiB (the test suite's bound: 50 MiB).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "testing_trials_memory.md").write_text(text)
    (RESULTS / "testing_trials_memory.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
