"""The record writer's maximum sustained rows per second from one process, into PostgreSQL and
into SQLite, one run.

A round builds realistic finished runs (a chat request, its answer, the usual events, one
attempt), submits them all at once to a `RecordWriter` whose own thread writes them as it does
in a gateway (its loop, its slices and pauses, `full` bodies), and counts rows per second from
the first submit to the last row written: the rate the writer keeps up while it is never idle.
PostgreSQL is a throwaway local cluster with durable commits (fsync on, as in production); the
stores alternate round by round so drift on a shared machine hits both alike.

    flock /tmp/turnout-bench.lock python bench/store/pg_writer.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tests"))

from pg_server import PostgresServer  # noqa: E402

from turnout.lifecycle.run import Attempt, Run  # noqa: E402
from turnout.lifecycle.states import State  # noqa: E402
from turnout.store.writer import RecordWriter  # noqa: E402

PROMPT = "Summarise the following paragraph in two sentences. " * 20
ANSWER = "The paragraph says that the gateway records every request. " * 6


def finished_run(i: int, tag: str) -> Run:
    r = Run(id=f"{i:012x}{tag}", model="assistant", operation="chat", request_body={
        "model": "assistant", "max_tokens": 256, "temperature": 0.2,
        "messages": [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": PROMPT}]})  # fmt: skip
    candidates = [{"deployment": "a", "latency_ms": 120.0, "cost_usd": 1e-05}]
    r.transition(
        State.ROUTED, chosen="a", routing="ordered", rule="first available", candidates=candidates
    )
    r.transition(State.ATTEMPTING, attempt=1, deployment="a")
    a = Attempt(1, "a", started=r.now(), ok=True, prompt_tokens=230, completion_tokens=60,
                cost_usd=2.1e-05, ttft_s=0.05, finish_reason="stop")  # fmt: skip
    a.ended = r.now()
    r.attempts.append(a)
    r.transition(State.VALIDATING, finish_reason="stop")
    r.transition(State.COMPLETED)
    r.http_status = 200
    r.response_body = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [
        {"index": 0, "finish_reason": "stop",
         "message": {"role": "assistant", "content": ANSWER}}],
        "usage": {"prompt_tokens": 230, "completion_tokens": 60, "total_tokens": 290}}  # fmt: skip
    return r


def sustained(url: str, n: int, tag: str) -> float:
    runs = [finished_run(i, tag) for i in range(n)]
    writer = RecordWriter(url, "full", 0.01, n + 1)
    writer.open()
    try:
        t0 = time.perf_counter()
        for run in runs:
            writer.submit(run)
        while writer.written + writer.dropped < n:
            time.sleep(0.001)
        spent = time.perf_counter() - t0
        assert writer.written == n and writer.dropped == 0, (writer.written, writer.dropped)
    finally:
        writer.close()
    return n / spent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--records", type=int, default=20_000, help="records per round")
    p.add_argument("--name", default="store_writer_pg")
    a = p.parse_args()
    command = "python bench/store/pg_writer.py " + shlex.join(sys.argv[1:])
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    rates: dict[str, list[float]] = {"postgresql": [], "sqlite": []}
    server = PostgresServer(durable=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(a.rounds):
                order = ["postgresql", "sqlite"] if r % 2 == 0 else ["sqlite", "postgresql"]
                for store in order:
                    url = (
                        server.create_database()
                        if store == "postgresql"
                        else f"sqlite:///{tmp}/bench-{r}.db"
                    )
                    rate = sustained(url, a.records, f"r{r}")
                    rates[store].append(rate)
                    print(f"round {r + 1} {store:<10} {rate:10,.0f} rows/s", file=sys.stderr)
    finally:
        server.destroy()
    summary = {
        store: {"median": statistics.median(v), "min": min(v), "max": max(v), "rounds": v}
        for store, v in rates.items()
    }
    machine = f"{platform.machine()}, Python {platform.python_version()}"
    report = {"command": command, "commit": head, "records": a.records, "machine": machine}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{a.name}.json").write_text(json.dumps({**report, "results": summary}, indent=2))
    lines = [
        f"`{command}`",
        "",
        f"# Record writer: maximum sustained rows/s from one process ({head})",
        "",
        f"{a.rounds} alternating rounds per store; each submits {a.records} finished chat runs "
        "(full bodies) at once to a fresh store and counts rows per second until the writer's "
        "own thread has written the last. PostgreSQL 15, a local cluster with fsync on (the "
        "writer's own session commits without waiting for the WAL flush: synchronous_commit "
        "off). "
        f"{machine}, 2 cores shared with other work.",
        "",
        "| store | median rows/s | min | max |",
        "|---|---:|---:|---:|",
    ]
    for store, s in summary.items():
        lines.append(f"| {store} | {s['median']:,.0f} | {s['min']:,.0f} | {s['max']:,.0f} |")
    (RESULTS / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
