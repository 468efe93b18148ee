"""Record writer throughput: rows per second of this checkout against a baseline commit, one run.

Each version runs in its own process with its own `src/` (the baseline's is exported with
`git archive`), alternating A/B rounds so drift on a shared machine hits both alike. A round
builds realistic finished runs (a chat request, its answer, the usual six events, one attempt),
submits them to a `RecordWriter` on a fresh SQLite file and times the flushes, `--batch` runs at
a time, as the writer thread takes them from a busy gateway. Rows per second counts building the
rows and writing them, which is everything the writer thread does per record.

    python bench/store/writer.py --baseline a97b41a
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"

# Runs in a child process with one version's src/ on PYTHONPATH; prints rows/s as JSON.
CHILD = r"""
import json, sys, tempfile, time
from turnout.lifecycle.run import Attempt, Run
from turnout.lifecycle.states import State
from turnout.store.sqlite import RecordWriter

n, batch, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
prompt = "Summarise the following paragraph in two sentences. " * 20
answer = "The paragraph says that the gateway records every request. " * 6

def run(i):
    r = Run(id=f"{i:012x}bench", model="assistant", operation="chat", request_body={
        "model": "assistant", "max_tokens": 256, "temperature": 0.2,
        "messages": [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": prompt}]})
    r.transition(State.ROUTED, chosen="a", routing="ordered", rule="first available",
                 candidates=[{"deployment": "a", "latency_ms": 120.0, "cost_usd": 1e-05}])
    r.transition(State.ATTEMPTING, attempt=1, deployment="a")
    a = Attempt(1, "a", started=r.now(), ok=True, prompt_tokens=230, completion_tokens=60,
                cost_usd=2.1e-05, ttft_s=0.05, finish_reason="stop")
    a.ended = r.now()
    r.attempts.append(a)
    r.transition(State.VALIDATING, finish_reason="stop")
    r.transition(State.COMPLETED)
    r.http_status = 200
    r.response_body = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [
        {"index": 0, "finish_reason": "stop",
         "message": {"role": "assistant", "content": answer}}],
        "usage": {"prompt_tokens": 230, "completion_tokens": 60, "total_tokens": 290}}
    return r

runs = [run(i) for i in range(n)]
with tempfile.TemporaryDirectory() as d:
    w = RecordWriter(f"sqlite:///{d}/bench.db", mode, 3600, n + 1)
    w.open()
    spent = 0.0
    for start in range(0, n, batch):
        for r in runs[start:start + batch]:
            w.submit(r)
        t0 = time.perf_counter()
        w.flush()
        spent += time.perf_counter() - t0
    assert w.written == n and w.dropped == 0, (w.written, w.dropped)
    w.close()
print(json.dumps({"rows_per_s": n / spent}))
"""


def export_src(ref: str, into: Path) -> Path:
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "src"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def measure(src: Path, n: int, batch: int, mode: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(batch), mode],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return float(json.loads(out)["rows_per_s"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, help="git ref of the version to compare with")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--records", type=int, default=20_000, help="records per round")
    p.add_argument("--batch", type=int, default=200, help="records per flush")
    p.add_argument("--modes", default="full,redacted")
    p.add_argument("--name", default="store_writer")
    a = p.parse_args()
    base_sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", a.baseline],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    head_sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    modes = a.modes.split(",")
    results: dict[str, dict[str, list[float]]] = {m: {"baseline": [], "this": []} for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        sources = {"baseline": export_src(a.baseline, Path(tmp)), "this": ROOT / "src"}
        total = a.rounds * len(modes) * 2
        done = 0
        for r in range(a.rounds):
            for mode in modes:
                order = ["baseline", "this"] if r % 2 == 0 else ["this", "baseline"]
                for version in order:
                    rate = measure(sources[version], a.records, a.batch, mode)
                    results[mode][version].append(rate)
                    done += 1
                    print(
                        f"[{done}/{total}] round {r + 1} {mode:<8} {version:<8} "
                        f"{rate:10,.0f} rows/s",
                        file=sys.stderr,
                        flush=True,
                    )
    command = f"python bench/store/writer.py --baseline {a.baseline} --rounds {a.rounds}"
    command += f" --records {a.records} --batch {a.batch} --modes {a.modes}"
    rows = []
    for mode in modes:
        b = statistics.median(results[mode]["baseline"])
        t = statistics.median(results[mode]["this"])
        rows.append((mode, b, t, (t / b - 1) * 100))
    lines = [
        f"# Record writer throughput: {head_sha} against {base_sha}",
        "",
        f"`{command}`",
        "",
        f"{a.rounds} alternating rounds per version and mode; each round writes {a.records} "
        f"finished chat runs to a fresh SQLite file, {a.batch} per flush, and counts rows per "
        "second of flushing (building the rows and writing them). Median of the rounds. "
        f"{platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores shared with other work.",
        "",
        f"| record_bodies | {base_sha} rows/s | {head_sha} rows/s | change |",
        "|---|---|---|---|",
        *(f"| {m} | {b:,.0f} | {t:,.0f} | {d:+.1f}% |" for m, b, t, d in rows),
        "",
        "Rounds (rows/s): "
        + "; ".join(
            f"{m} {v}: " + ", ".join(f"{x:,.0f}" for x in results[m][v])
            for m in modes
            for v in ("baseline", "this")
        ),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{a.name}.md").write_text(text)
    (RESULTS / f"{a.name}.json").write_text(
        json.dumps(
            {
                "command": command,
                "baseline": base_sha,
                "this": head_sha,
                "records": a.records,
                "batch": a.batch,
                "rounds": results,
                "median_rows_per_s": {m: {"baseline": b, "this": t} for m, b, t, _ in rows},
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=1,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
