"""Throughput of `turnout serve --workers N` for N in 1, 2, 4, recording into SQLite and into
PostgreSQL, side by side in one run.

Starts the fast loopback upstream (bench/upstream.py), one redis-server, a throwaway PostgreSQL
cluster (bench/pg_cluster.py, durable commits) and one gateway per store and N (each with its own
record — a SQLite file or a fresh database — and its own Redis database, every default on: the
record with full bodies, metrics), then drives them with wrk (bench/wrk/chat.lua, closed loop,
non-streaming, --concurrency connections) in interleaved rounds — N by N, the two stores in
turn, the first store alternating round by round — so noise from the shared machine falls on
every cell alike. Per store and N it reports req/s, latency, the CPU the whole process group
(supervisor and workers) used per request, the speed-up over that store's one worker, and the
efficiency per core: the speed-up divided by the cores N workers could use (min(N, cores)).
Then it checks each record: every answered request is in it, once.

Needs: wrk, redis-server, PostgreSQL's server binaries (initdb, postgres), the project's venv
(PYTHONPATH=src for this checkout). Run:
`PYTHONPATH=src flock /tmp/turnout-bench.lock .venv/bin/python bench/workers.py`. Results:
bench/results/workers.{md,json}. `--stores sqlite` (or `postgresql`) measures one store only.
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
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

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
from pg_cluster import Cluster

WORK = BENCH / ".work" / "workers"
RESULTS = BENCH / "results"
STORES = ("sqlite", "postgresql")


@dataclass
class Group:
    """One `turnout serve --workers n` on one store and what was measured of it."""

    kind: str  # sqlite | postgresql
    n: int
    proc: Proc
    port: int
    store: str
    cells: list[dict[str, Any]] = field(default_factory=list)
    answered: int = 0  # 200s across warm-ups and cells: each must be in the record

    @property
    def target(self) -> Target:
        url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        return Target(self.name, url, "bench", proc=self.proc)

    @property
    def name(self) -> str:
        return f"{self.kind}-workers={self.n}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", default="1,2,4", help="worker counts, side by side")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=int, default=15, help="seconds per measured cell")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of load before each cell")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the Ns")
    ap.add_argument(
        "--stores", default=",".join(STORES), help="records, side by side: sqlite,postgresql"
    )
    ap.add_argument("--turnout-bin", help="the `turnout` command (default: this Python's)")
    venv = BENCH / ".venv-bench" / "bin" / "python"
    ap.add_argument("--bench-python", default=str(venv if venv.exists() else sys.executable))
    ap.add_argument("--out", default=str(RESULTS / "workers"))
    args = ap.parse_args(argv)
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if not args.stores or any(s not in STORES for s in args.stores):
        ap.error(f"--stores: a comma-separated subset of {','.join(STORES)}")
    return args


def write_config(name: str, up_port: int, redis_port: int, redis_db: int, store: str) -> Path:
    path = WORK / f"{name}.yaml"
    path.write_text(
        f"""store: {{url: "{store}"}}
state: {{url: "redis://127.0.0.1:{redis_port}/{redis_db}"}}
deployments:
  up: {{kind: openai, base_url: "http://127.0.0.1:{up_port}/v1", model: bench-model}}
models:
  bench: {{deployments: [up]}}
"""
    )
    return path


def start_group(
    args: argparse.Namespace,
    procs: Processes,
    kind: str,
    n: int,
    ports: tuple[int, int, int],
    cluster: Cluster | None,
) -> Group:
    """`ports`: the upstream's, Redis's, and this group's Redis database number."""
    up, redis, redis_db = ports
    name = f"{kind}-workers-{n}"
    if cluster is not None:
        store = cluster.create_database(f"workers_{n}")  # a fresh record for this group alone
    else:
        db = WORK / f"record-{n}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        store = f"sqlite:///{db}"
    port = free_port()
    turnout = [args.turnout_bin] if args.turnout_bin else [sys.executable, "-m", "turnout"]
    argv = [*turnout, "serve", "--config", str(write_config(name, up, redis, redis_db, store))]
    proc = procs.start(name, [*argv, "--port", str(port), "--workers", str(n)], env(), REPO)
    if n == 1:
        wait_ready(proc, f"http://127.0.0.1:{port}/readyz", 120)
    else:
        deadline = time.monotonic() + 180
        while f"ready: {n} workers" not in proc.log_path.read_text(errors="replace"):
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{proc.log_tail()}")
            time.sleep(0.2)
    return Group(kind, n, proc, port, store)


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
        "store": g.kind,
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
    time.sleep(2)  # a flush interval or two: the last answers reach the record
    query = "SELECT count(*), count(DISTINCT id) FROM requests"
    if g.kind == "sqlite":
        with sqlite3.connect(g.store.removeprefix("sqlite:///")) as conn:
            rows, distinct = conn.execute(query).fetchone()
    else:
        with psycopg.connect(g.store) as pg:
            rows, distinct = pg.execute(query).fetchone() or (0, 0)
    out.update(rows=rows, distinct=distinct)
    return out


def summarise(groups: list[Group], cores: int) -> list[dict[str, Any]]:
    """A row per store and N; speed-up and CPU efficiency against the same store's one worker."""
    rows = []
    for g in groups:
        base = next(b for b in groups if b.kind == g.kind)
        base_rps = statistics.median(c["rps"] for c in base.cells)
        base_cpu = statistics.median(c["gateway_cpu_ms_per_req"] for c in base.cells)
        rps = statistics.median(c["rps"] for c in g.cells)
        speedup = rps / base_rps
        cpu = statistics.median(c["gateway_cpu_ms_per_req"] for c in g.cells)
        rows.append(
            {
                "store": g.kind,
                "workers": g.n,
                "rps": rps,
                "rps_each_round": [round(c["rps"], 1) for c in g.cells],
                "p50_ms": statistics.median(c["p50_ms"] for c in g.cells),
                "p99_ms": statistics.median(c["p99_ms"] for c in g.cells),
                "cpu_ms_per_req": cpu,
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
                "postgres_cores": statistics.median(
                    c["bench_cores"].get("postgres", 0.0) for c in g.cells
                ),
                "errors": sum(c["errors"] for c in g.cells),
            }
        )
    return sorted(rows, key=lambda r: (STORES.index(r["store"]), r["workers"]))


def side_by_side(groups: list[Group]) -> list[dict[str, Any]]:
    """Per N, PostgreSQL against SQLite in the same rounds: the median of the per-round ratios,
    so drift between rounds cancels."""
    by = {(g.kind, g.n): g for g in groups}
    out = []
    for n in sorted({g.n for g in groups}):
        sq, pg = by.get(("sqlite", n)), by.get(("postgresql", n))
        if sq is None or pg is None:
            continue
        pairs = list(zip(sq.cells, pg.cells, strict=False))
        out.append(
            {
                "workers": n,
                "rps_ratio": statistics.median(p["rps"] / s["rps"] for s, p in pairs),
                "cpu_ratio": statistics.median(
                    p["gateway_cpu_ms_per_req"] / s["gateway_cpu_ms_per_req"] for s, p in pairs
                ),
            }
        )
    return out


def portable_command() -> str:
    """The command as run, with the interpreter named as the project's venv, not this machine's
    path to it."""
    command = command_line()
    if sys.executable.endswith("/.venv/bin/python"):
        command = command.replace(sys.executable, ".venv/bin/python", 1)
    return command


def write(
    args: argparse.Namespace,
    groups: list[Group],
    rows: list[dict[str, Any]],
    checks: dict[str, Any],
    pg_version: str | None,
) -> None:
    cores = os.cpu_count() or 1
    out = Path(args.out)
    ratios = side_by_side(groups)
    stores = {
        "sqlite": "SQLite, a file per N (WAL)",
        "postgresql": f"PostgreSQL {pg_version}, a throwaway local cluster with fsync on, "
        "a fresh database per N",
    }
    result = {
        "command": portable_command(),
        "cores": cores,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rounds": args.rounds,
        "stores": {k: stores[k] for k in args.stores},
        "summary": rows,
        "postgresql_vs_sqlite": ratios,
        "records": checks,
        "cells": [c for g in groups for c in g.cells],
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"`{result['command']}`",
        "",
        "# Throughput with several workers (`turnout serve --workers N`), SQLite and PostgreSQL",
        "",
        f"wrk closed loop, {args.concurrency} connections, non-streaming, against a fast loopback "
        f"upstream; {args.rounds} interleaved rounds of {args.duration} s per store and N (after "
        f"{args.warmup} s of warm-up; medians shown); records: "
        + "; ".join(stores[k] for k in args.stores)
        + f"; shared state: one redis-server (a database per gateway); {cores} cores shared by "
        "the gateways, the upstream, Redis, PostgreSQL and wrk.",
        "",
        "| store | workers | req/s | p50 ms | p99 ms | gateway CPU ms/req | gateway cores used "
        "| speed-up | efficiency per core | CPU efficiency | CPU split by process "
        "| PostgreSQL, cores | other load, cores | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['store']} | {r['workers']} | {fmt(r['rps'], 0)} | {fmt(r['p50_ms'])} "
            f"| {fmt(r['p99_ms'])} | {fmt(r['cpu_ms_per_req'])} | {fmt(r['gateway_cores'])} "
            f"| {fmt(r['speedup'])}x | {fmt(r['efficiency_per_core'])} "
            f"| {fmt(r['cpu_efficiency'])} "
            f"| {' / '.join(f'{x * 100:.0f}%' for x in r['cpu_split'])} "
            f"| {fmt(r['postgres_cores']) if r['store'] == 'postgresql' else '—'} "
            f"| {fmt(r['other_load_cores'])} | {r['errors']} |"
        )
    if ratios:
        lines += [
            "",
            "PostgreSQL against SQLite, per N (median of the per-round ratios):",
            "",
            "| workers | req/s, PostgreSQL / SQLite "
            "| gateway CPU per request, PostgreSQL / SQLite |",
            "|---|---|---|",
        ]
        lines += [
            f"| {r['workers']} | {fmt(r['rps_ratio'])} | {fmt(r['cpu_ratio'])} |" for r in ratios
        ]
    lines += ["", "Record check (after the last round):", ""]
    for name, c in checks.items():
        lines.append(
            f"- {name}: {c['answered']} requests answered 200, {c['rows']} rows "
            f"({c['distinct']} distinct ids), {c['dropped']:.0f} dropped"
        )
    lines += [
        "",
        "Speed-up and CPU efficiency are against the same store's one worker. Efficiency per "
        "core = speed-up / min(N, cores). CPU efficiency = one worker's gateway CPU per request "
        "/ N workers' (what several processes cost: the shared metrics files, Redis, the "
        "store's writes); it does not depend on how much of the machine the gateway got. "
        "Gateway CPU counts the gateway's processes only, not PostgreSQL's. Other load: CPU the "
        "rest of the machine (work outside this benchmark) used during the cells. The load "
        "generator, the upstream, Redis and PostgreSQL run on the same cores, so the cores left "
        "to the gateway are fewer than the machine has; `gateway cores used` says how much of "
        "the machine the gateway's processes got. CPU split: each process's share of the "
        "group's CPU, largest first (the supervisor is the smallest): how evenly SO_REUSEPORT "
        "spread the connections. Requests answered count warm-ups too; the record may hold up "
        "to one row more per connection per wrk run: requests in flight when wrk stops are "
        "answered and recorded, but not counted by wrk. PostgreSQL, cores: what the database "
        "server's processes used meanwhile (on top of the gateway's CPU).",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    log(f"wrote {out.with_suffix('.md')} and .json")


def pg_server_version(cluster: Cluster) -> str:
    with psycopg.connect(cluster.url("postgres")) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(x) for x in args.workers.split(",")]
    WORK.mkdir(parents=True, exist_ok=True)
    procs = Processes()
    cluster: Cluster | None = None
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
        others = [upstream, redis]
        pg_version = None
        if "postgresql" in args.stores:
            cluster = Cluster()
            cluster.start()
            pg_version = pg_server_version(cluster)
            assert cluster.proc is not None
            others.append(Proc("postgres", cluster.proc, cluster.root / "postgres.log"))
            log(f"postgres {pg_version} on port {cluster.port}")
        groups: list[Group] = []
        for n in counts:
            for kind in args.stores:
                ports = (up_port, redis_port, len(groups))
                pg = cluster if kind == "postgresql" else None
                groups.append(start_group(args, procs, kind, n, ports, pg))
        by = {(g.kind, g.n): g for g in groups}
        for rnd in range(args.rounds):
            # The store measured first alternates round by round; N by N, the stores in turn.
            order = args.stores[rnd % len(args.stores) :] + args.stores[: rnd % len(args.stores)]
            for n in counts:
                for kind in order:
                    g = by[(kind, n)]
                    cell = measure(g, args, others)
                    cell["round"] = rnd + 1
                    g.cells.append(cell)
                    log(
                        f"round {rnd + 1} {g.name}: {cell['rps']:.0f} req/s, "
                        f"p99 {cell['p99_ms']:.1f} ms, "
                        f"{cell['gateway_cpu_ms_per_req']:.2f} ms CPU/req, "
                        f"other load {cell['other_load_cores']:.2f} cores"
                    )
        checks = {g.name: record_check(g) for g in groups}
        write(args, groups, summarise(groups, os.cpu_count() or 1), checks, pg_version)
    finally:
        procs.stop_all()
        if cluster is not None:
            with suppress(Exception):
                cluster.destroy()
                log("stopped postgres")
    return 0


if __name__ == "__main__":
    sys.exit(main())
