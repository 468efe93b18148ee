"""Throughput of `turnout serve --workers N` for N in 1, 2, 4, side by side in one run.

Starts the fast loopback upstream (bench/upstream.py), one redis-server and one gateway per N
(each with its own record and its own Redis database, every default on: the record with full
bodies, metrics), then drives them with wrk (bench/wrk/chat.lua, closed loop, non-streaming,
--concurrency connections) in interleaved rounds, so noise from the shared machine falls on
every N alike. Per N it reports req/s, latency, the CPU the whole process group (supervisor and
workers) used per request, the speed-up over one worker, and the efficiency per core: the
speed-up divided by the cores N workers could use (min(N, cores)). Then it checks the record:
every answered request is in it, once.

Needs: wrk, redis-server, the project's venv (PYTHONPATH=src for this checkout). Run:
`PYTHONPATH=src flock /tmp/turnout-bench.lock .venv/bin/python bench/workers.py`. Results:
bench/results/workers.{md,json}. `--store-url` puts every gateway's record in that store
instead of a SQLite file each (e.g. a PostgreSQL URL, where the build supports it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_overhead.common import BENCH, CLK_TCK, REPO, fmt, log
from gateway_overhead.notes import command_line
from gateway_overhead.procs import (
    Proc,
    Processes,
    children_cpu_seconds,
    cpu_seconds,
    free_port,
    process_tree,
    system_busy_seconds,
    wait_ready,
)
from gateway_overhead.targets import Target
from gateway_overhead.wrk import run_wrk

WORK = BENCH / ".work" / "workers"
RESULTS = BENCH / "results"


@dataclass
class Group:
    """One `turnout serve --workers n` and what was measured of it."""

    n: int
    proc: Proc
    port: int
    store: str
    cells: list[dict[str, Any]] = field(default_factory=list)
    answered: int = 0  # 200s across warm-ups and cells: each must be in the record

    @property
    def target(self) -> Target:
        url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        return Target(f"workers={self.n}", url, "bench", proc=self.proc)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", default="1,2,4", help="worker counts, side by side")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=int, default=15, help="seconds per measured cell")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of load before each cell")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the Ns")
    ap.add_argument("--store-url", help="every gateway's record here (default: a SQLite each)")
    ap.add_argument("--turnout-bin", help="the `turnout` command (default: this Python's)")
    venv = BENCH / ".venv-bench" / "bin" / "python"
    ap.add_argument("--bench-python", default=str(venv if venv.exists() else sys.executable))
    ap.add_argument("--out", default=str(RESULTS / "workers"))
    return ap.parse_args(argv)


def write_config(n: int, up_port: int, redis_port: int, store: str) -> Path:
    path = WORK / f"workers-{n}.yaml"
    path.write_text(
        f"""store: {{url: "{store}"}}
state: {{url: "redis://127.0.0.1:{redis_port}/{n}"}}
deployments:
  up: {{kind: openai, base_url: "http://127.0.0.1:{up_port}/v1", model: bench-model}}
models:
  bench: {{deployments: [up]}}
"""
    )
    return path


def start_group(args: argparse.Namespace, procs: Processes, n: int, up: int, redis: int) -> Group:
    store = args.store_url or f"sqlite:///{WORK / f'record-{n}.db'}"
    if not args.store_url:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{WORK / f'record-{n}.db'}{suffix}").unlink(missing_ok=True)
    port = free_port()
    turnout = [args.turnout_bin] if args.turnout_bin else [sys.executable, "-m", "turnout"]
    argv = [*turnout, "serve", "--config", str(write_config(n, up, redis, store))]
    proc = procs.start(
        f"workers-{n}", [*argv, "--port", str(port), "--workers", str(n)], env(), REPO
    )
    if n == 1:
        wait_ready(proc, f"http://127.0.0.1:{port}/readyz", 120)
    else:
        deadline = time.monotonic() + 180
        while f"ready: {n} workers" not in proc.log_path.read_text(errors="replace"):
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"workers={n} did not start:\n{proc.log_tail()}")
            time.sleep(0.2)
    return Group(n, proc, port, store)


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    out["PYTHONUNBUFFERED"] = "1"
    return out


def measure(g: Group, args: argparse.Namespace, others: list[Proc]) -> dict[str, Any]:
    warm = run_wrk(g.target, "nonstream", args.concurrency, args.warmup)
    g.answered += warm.requests - warm.errors["non200"] - warm.errors["bad_body"]
    cpu0 = cpu_seconds(g.proc.pid)
    each0 = {pid: own_cpu(pid) for pid in process_tree(g.proc.pid)}
    side0 = {p.name: cpu_seconds(p.pid) for p in others}
    busy0, wall0, wrk0 = system_busy_seconds(), time.monotonic(), children_cpu_seconds()
    res = run_wrk(g.target, "nonstream", args.concurrency, args.duration)
    wall = time.monotonic() - wall0
    wrk_cores = (children_cpu_seconds() - wrk0) / wall
    cpu = cpu_seconds(g.proc.pid) - cpu0
    # How evenly SO_REUSEPORT spread the connections: each process's share of the group's CPU.
    each = sorted((own_cpu(pid) - c0 for pid, c0 in each0.items()), reverse=True)
    g.answered += res.requests - res.errors["non200"] - res.errors["bad_body"]
    seconds = res.raw["duration_us"] / 1e6
    n = max(res.requests, 1)
    busy = (system_busy_seconds() - busy0) / wall
    side = {p.name: (cpu_seconds(p.pid) - side0[p.name]) / wall for p in others}
    return {
        "workers": g.n,
        "requests": res.requests,
        "errors": res.error_total,
        "rps": res.requests / seconds,
        "p50_ms": res.lat_ms("p50"),
        "p99_ms": res.lat_ms("p99"),
        "gateway_cpu_ms_per_req": cpu * 1000 / n,
        "gateway_cores": cpu / wall,
        "cpu_share_by_process": [round(x / max(cpu, 1e-9), 3) for x in each],
        "bench_cores": {**side, "wrk": wrk_cores},
        "machine_busy_cores": busy,
        # What the rest of the machine (other people's work) took meanwhile.
        "other_load_cores": busy - cpu / wall - sum(side.values()) - wrk_cores,
    }


def own_cpu(pid: int) -> float:
    """utime + stime of one process (its threads, not its children), in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def record_check(g: Group) -> dict[str, Any]:
    """Rows in the record against 200s answered; what the gateway says it dropped."""
    with urllib.request.urlopen(f"http://127.0.0.1:{g.port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    m = re.search(r"^turnout_records_dropped_total (\S+)$", text, re.M)
    out: dict[str, Any] = {"answered": g.answered, "dropped": float(m.group(1)) if m else 0.0}
    if g.store.startswith("sqlite:///"):
        time.sleep(2)  # a flush interval or two: the last answers reach the file
        with sqlite3.connect(g.store.removeprefix("sqlite:///")) as conn:
            rows, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT id) FROM requests"
            ).fetchone()
        out.update(rows=rows, distinct=distinct)
    return out


def summarise(groups: list[Group], cores: int) -> list[dict[str, Any]]:
    base = statistics.median(c["rps"] for c in groups[0].cells)
    base_cpu = statistics.median(c["gateway_cpu_ms_per_req"] for c in groups[0].cells)
    rows = []
    for g in groups:
        rps = statistics.median(c["rps"] for c in g.cells)
        speedup = rps / base
        rows.append(
            {
                "workers": g.n,
                "rps": rps,
                "rps_each_round": [round(c["rps"], 1) for c in g.cells],
                "p50_ms": statistics.median(c["p50_ms"] for c in g.cells),
                "p99_ms": statistics.median(c["p99_ms"] for c in g.cells),
                "cpu_ms_per_req": (
                    cpu := statistics.median(c["gateway_cpu_ms_per_req"] for c in g.cells)
                ),
                # Requests per second one core of gateway CPU buys, against one worker's.
                "cpu_efficiency": base_cpu / cpu,
                "other_load_cores": statistics.median(c["other_load_cores"] for c in g.cells),
                "gateway_cores": statistics.median(c["gateway_cores"] for c in g.cells),
                "cpu_split": [
                    statistics.median(share)
                    for share in zip(*(c["cpu_share_by_process"] for c in g.cells), strict=False)
                ],
                "speedup": speedup,
                "efficiency_per_core": speedup / min(g.n, cores),
                "errors": sum(c["errors"] for c in g.cells),
            }
        )
    return rows


def write(
    args: argparse.Namespace,
    groups: list[Group],
    rows: list[dict[str, Any]],
    checks: dict[int, Any],
) -> None:
    cores = os.cpu_count() or 1
    out = Path(args.out)
    store = args.store_url.split("@")[-1] if args.store_url else "SQLite (one file per N)"
    result = {
        "command": command_line(),
        "cores": cores,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "store": store,
        "summary": rows,
        "records": checks,
        "cells": [c for g in groups for c in g.cells],
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"`{result['command']}`",
        "",
        "# Throughput with several workers (`turnout serve --workers N`)",
        "",
        f"wrk closed loop, {args.concurrency} connections, non-streaming, against a fast loopback "
        f"upstream; {args.rounds} interleaved rounds of {args.duration} s per N (medians shown); "
        f"record: {store}; shared state: one redis-server (a database per N); {cores} cores "
        "shared by the gateway, the upstream, Redis and wrk.",
        "",
        "| workers | req/s | p50 ms | p99 ms | gateway CPU ms/req | gateway cores used "
        "| speed-up | efficiency per core | CPU efficiency | CPU split by process "
        "| other load, cores | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workers']} | {fmt(r['rps'], 0)} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} "
            f"| {fmt(r['cpu_ms_per_req'])} | {fmt(r['gateway_cores'])} | {fmt(r['speedup'])}x "
            f"| {fmt(r['efficiency_per_core'])} | {fmt(r['cpu_efficiency'])} "
            f"| {' / '.join(f'{x * 100:.0f}%' for x in r['cpu_split'])} "
            f"| {fmt(r['other_load_cores'])} | {r['errors']} |"
        )
    lines += ["", "Record check (after the last round):", ""]
    for n, c in checks.items():
        kept = f"{c['rows']} rows ({c['distinct']} distinct ids)" if "rows" in c else "not read"
        lines.append(
            f"- workers={n}: {c['answered']} requests answered 200, {kept}, "
            f"{c['dropped']:.0f} dropped"
        )
    lines += [
        "",
        "Efficiency per core = speed-up over one worker / min(N, cores). CPU efficiency = one "
        "worker's gateway CPU per request / N workers' (what several processes cost: the shared "
        "metrics files, Redis, SQLite lock hand-offs); it does not depend on how much of the "
        "machine the gateway got. Other load: CPU the rest of the machine (work outside this "
        "benchmark) used during the cells. The load generator, "
        "the upstream and Redis run on the same cores, so the cores left to the gateway are "
        "fewer than the machine has; `gateway cores used` says how much of the machine the "
        "gateway's processes got. CPU split: each process's share of the group's CPU, largest "
        "first (the supervisor is the smallest): how evenly SO_REUSEPORT spread the connections.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    log(f"wrote {out.with_suffix('.md')} and .json")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(x) for x in args.workers.split(",")]
    WORK.mkdir(parents=True, exist_ok=True)
    procs = Processes()
    try:
        up_port, redis_port = free_port(), free_port()
        upstream = procs.start(
            "upstream",
            [args.bench_python, str(BENCH / "upstream.py"), "--port", str(up_port)],
            env(),
            REPO,
        )
        wait_ready(upstream, f"http://127.0.0.1:{up_port}/health", 30)
        redis_bin = shutil.which("redis-server") or "redis-server"
        redis = procs.start(
            "redis",
            [
                redis_bin,
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            env(),
            WORK,
        )
        groups = [start_group(args, procs, n, up_port, redis_port) for n in counts]
        for rnd in range(args.rounds):
            for g in groups:
                cell = measure(g, args, [upstream, redis])
                g.cells.append(cell)
                log(
                    f"round {rnd + 1} workers={g.n}: {cell['rps']:.0f} req/s, "
                    f"p99 {cell['p99_ms']:.1f} ms, {cell['gateway_cpu_ms_per_req']:.2f} ms CPU/req"
                )
        checks = {g.n: record_check(g) for g in groups}
        write(args, groups, summarise(groups, os.cpu_count() or 1), checks)
    finally:
        procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
