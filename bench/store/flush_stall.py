"""Does the record's batch flush stall the request path? p99 at c=1 per `store.flush_interval_s`.

For each flush interval, `turnout serve` (record with full bodies, no spans, so the record
writer is the only background work) runs from this checkout's `src/` and from a baseline
commit's (exported with `git archive`), alternating, in rounds; wrk sends non-streaming
requests one at a time through it to the loopback upstream (bench/upstream.py) for
`--seconds`. A flush that holds the interpreter lock in one burst delays every request that
wakes meanwhile, so its cost shows in the tail at c=1 and grows with the batch, i.e. with the
interval. Each cell waits for a quiet machine first and records how busy other processes were.

    flock /tmp/turnout-bench.lock bench/.venv-bench/bin/python bench/store/flush_stall.py \\
        --baseline 23f5786,1cef223 --nice -10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
from gateway_overhead.closed import Bench  # noqa: E402
from gateway_overhead.common import REPO, WORK, fmt, log  # noqa: E402
from gateway_overhead.notes import command_line  # noqa: E402
from gateway_overhead.procs import Processes, free_port, wait_ready  # noqa: E402
from gateway_overhead.report import md_table  # noqa: E402
from gateway_overhead.setup import base_env, env_info  # noqa: E402
from gateway_overhead.targets import Target  # noqa: E402

sys.path.insert(0, str(BENCH / "store"))
from writer import export_src  # noqa: E402


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def config(port: int, up_port: int, interval: float, db: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    path = WORK / "flush_stall.yaml"
    path.write_text(
        f"server: {{host: 127.0.0.1, port: {port}}}\n"
        f'store: {{url: "sqlite:///{db}", record_bodies: full, flush_interval_s: {interval}}}\n'
        "deployments:\n"
        f'  up: {{kind: openai, base_url: "http://127.0.0.1:{up_port}/v1", '
        "model: bench-model, tags: [cloud]}\n"
        "models:\n"
        "  bench: {deployments: [up], routing: ordered}\n"
    )
    return path


def cell(
    a: argparse.Namespace, procs: Processes, upstream: Any, up_port: int, src: Path, interval: float
) -> dict[str, Any]:
    port = free_port()
    cfg = config(port, up_port, interval, WORK / "flush_stall.db")
    env = {**base_env(), "PYTHONPATH": str(src)}
    proc = procs.start(
        "turnout", [a.python, "-m", "turnout", "serve", "--config", str(cfg)], env, WORK
    )
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}/readyz", 120)
        t = Target("turnout", f"http://127.0.0.1:{port}/v1/chat/completions", "bench", proc=proc)
        b = Bench(a, upstream, {"turnout": t})
        waited = b.warm(t, "nonstream", 1, a.warmup)
        row = b.measure(t, "nonstream", 1, a.seconds)
        row["waited_for_quiet_s"] = waited
        return row
    finally:
        procs.stop(proc)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--baseline", required=True, help="git refs to compare with, comma-separated, oldest first"
    )
    p.add_argument("--intervals", default="0.05,0.2,2.0")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--nice", type=int, default=0)
    p.add_argument("--quiet-pct", type=float, default=10.0)
    p.add_argument("--quiet-timeout", type=float, default=30.0)
    p.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    p.add_argument("--bench-python", default=str(BENCH / ".venv-bench" / "bin" / "python"))
    p.add_argument("--out", default=str(BENCH / "results"))
    p.add_argument("--name", default="flush_stall")
    p.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    a = p.parse_args()
    if a.render:
        path = Path(a.out) / f"{a.name}.json"
        write(json.loads(path.read_text()), Path(a.out), a.name)
        return 0
    # what env_info() reads from the overhead driver's options
    a.turnout_bin, a.litellm_venv = str(Path(a.python).parent / "turnout"), "-"
    if a.nice:
        os.setpriority(os.PRIO_PROCESS, 0, a.nice)
    intervals = [float(x) for x in a.intervals.split(",")]
    refs = [r for r in a.baseline.split(",") if r]
    shas = {ref: git("rev-parse", "--short", ref) for ref in refs}
    shas["this"] = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain", "--untracked-files=no", "src"):
        shas["this"] += " + uncommitted"
    subjects = {ref: git("log", "-1", "--format=%s", ref) for ref in refs}
    subjects["this"] = "this checkout"
    result: dict[str, Any] = {
        "command": command_line(),
        "env": env_info(a),
        "versions": shas,
        "subjects": subjects,
        "settings": {
            k: getattr(a, k) for k in ("intervals", "rounds", "seconds", "warmup", "nice")
        },
        "cells": [],
    }
    procs = Processes()
    WORK.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sources = {ref: export_src(ref, Path(tmp) / f"v{i}") for i, ref in enumerate(refs)}
            sources["this"] = REPO / "src"
            up_port = free_port()
            upstream = procs.start(
                "upstream",
                [a.bench_python, str(BENCH / "upstream.py"), "--port", str(up_port)],
                base_env(),
                BENCH,
            )
            wait_ready(upstream, f"http://127.0.0.1:{up_port}/health", 30)
            for r in range(a.rounds):
                for interval in intervals:
                    order = list(sources) if r % 2 == 0 else list(reversed(sources))
                    for version in order:
                        log(f"round {r + 1} flush_interval_s {interval:g} {version}")
                        row = cell(a, procs, upstream, up_port, sources[version], interval)
                        row.update(version=version, interval=interval, round=r + 1)
                        result["cells"].append(row)
                        lat = row["latency_ms"]
                        log(
                            f"  {row['rps']:.0f} req/s p50 {fmt(lat['p50'])} p99 "
                            f"{fmt(lat['p99'])} p99.9 {fmt(lat['p999'])} max {fmt(lat['max'])} ms; "
                            f"other CPU {row['other_procs_cpu_pct']:.0f}%"
                        )
    finally:
        procs.stop_all()
    write(result, Path(a.out), a.name)
    return 0


def write(result: dict[str, Any], out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    cells, v = result["cells"], result["versions"]
    rows = []
    for interval in sorted({c["interval"] for c in cells}):
        for version, sha in v.items():
            mine = [c for c in cells if c["interval"] == interval and c["version"] == version]
            if not mine:
                continue
            line = [f"{interval:g} s", f"`{sha}`"]
            for key in ("p50", "p99", "p999", "max"):
                line.append(fmt(statistics.median(c["latency_ms"][key] for c in mine)))
            line.append(" / ".join(fmt(c["latency_ms"]["p99"]) for c in mine))
            line.append(fmt(statistics.median(c["rps"] for c in mine), 0))
            line.append(" / ".join(fmt(c["other_procs_cpu_pct"], 0) for c in mine))
            rows.append(line)
    e, st = result["env"], result["settings"]
    md = [
        f"`{result['command']}`",
        "",
        "# Record flush and the request path: p99 at c=1 per store.flush_interval_s",
        "",
        f"Run {e['date']} on {e['cpus']} cores ({e['cpu_model']}), load average at start "
        f"{' '.join(e['loadavg_at_start'])}; {e['wrk']}. `turnout serve` with `record_bodies: "
        "full` and no spans, one process, in front of bench/upstream.py; wrk sends "
        f"non-streaming chat requests one at a time (c=1) for {st['seconds']} s after a "
        f"{st['warmup']} s warm-up; {st['rounds']} rounds per version and interval, versions "
        "alternating; median of the rounds (each round's p99 listed after it). Latency = "
        "request written → response read, in ms.",
        "",
        "Versions: " + "; ".join(f"`{v[k]}` ({result['subjects'][k]})" for k in v) + ".",
        "",
        md_table(
            [
                "flush_interval_s",
                "version",
                "p50",
                "p99",
                "p99.9",
                "max",
                "p99 per round",
                "req/s",
                "other CPU % per round",
            ],
            rows,
        ),
        "",
        "Other CPU = CPU used by processes outside the benchmark during the cell, % of all "
        f"cores (the machine is shared); the benchmark ran at nice {st['nice']}.",
        "",
    ]
    (out / f"{name}.md").write_text("\n".join(md))
    log(f"wrote {out / name}.md and .json")


if __name__ == "__main__":
    sys.exit(main())
