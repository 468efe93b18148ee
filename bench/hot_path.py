"""The request path's cost at two revisions of turnout, interleaved in one run.

Each round starts one `turnout serve` of each revision (the overhead bench's config, every default
on: the record with full bodies, metrics, spans exported over OTLP to a loopback sink that counts
them) in front of bench/upstream.py, and drives it with wrk: 32 connections for throughput and one
for the added p50, non-streaming and streaming. The gateway's CPU per request comes from /proc,
not from its own word. Revisions alternate within every round, so drift falls on both.

Run: `PYTHONPATH=src flock /tmp/turnout-bench.lock bench/.venv-bench/bin/python bench/hot_path.py
--base REV` (about five minutes; REV is checked out in a temporary worktree); results in
bench/results/hot_path.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
sys.path.insert(0, str(BENCH))

from gateway_overhead.procs import cpu_seconds  # noqa: E402
from gateway_overhead.targets import Target  # noqa: E402
from gateway_overhead.wrk import run_wrk  # noqa: E402

TURNOUT_PY = REPO / ".venv" / "bin" / "python"
CONFIG = """server: {{host: 127.0.0.1, port: {port}}}
store: {{url: "sqlite:///{db}", record_bodies: full}}
telemetry: {{otlp_endpoint: "http://127.0.0.1:{otlp}"}}
deployments:
  up: {{kind: openai, base_url: "http://127.0.0.1:{up}/v1", model: bench-model, tags: [cloud]}}
models:
  bench: {{deployments: [up], routing: ordered}}
"""
CELLS = [("nonstream", 32), ("stream", 32), ("nonstream", 1), ("stream", 1)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout_s: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url}")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def measure(src: Path, tmp: Path, up: int, otlp: int, seconds: int) -> dict[str, dict[str, float]]:
    """One gateway of the checkout at `src`, every cell once."""
    port = free_port()
    cfg = tmp / f"gw-{port}.yaml"
    cfg.write_text(CONFIG.format(port=port, db=tmp / f"gw-{port}.db", otlp=otlp, up=up))
    env = dict(os.environ, PYTHONPATH=str(src))
    log = (tmp / f"gw-{port}.log").open("wb")
    argv = [str(TURNOUT_PY), "-m", "turnout", "serve", "--config", str(cfg)]
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    out: dict[str, dict[str, float]] = {}
    try:
        wait_up(f"http://127.0.0.1:{port}/healthz")
        target = Target("turnout", f"http://127.0.0.1:{port}/v1/chat/completions", "bench")
        for mode in ("nonstream", "stream"):
            run_wrk(target, mode, 32, 2)  # warm-up
        for mode, c in CELLS:
            before = cpu_seconds(proc.pid)
            res = run_wrk(target, mode, c, seconds)
            cpu = cpu_seconds(proc.pid) - before
            n = max(1, res.requests)
            out[f"{mode} c={c}"] = {
                "rps": n / (res.raw["duration_us"] / 1e6),
                "p50_ms": res.lat_ms("p50"),
                "cpu_ms": cpu * 1000 / n,
                "errors": float(res.error_total),
            }
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    return out


def direct_p50(up: int) -> dict[str, float]:
    target = Target("direct", f"http://127.0.0.1:{up}/v1/chat/completions", "bench-model")
    return {mode: run_wrk(target, mode, 1, 5).lat_ms("p50") for mode in ("nonstream", "stream")}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--base", required=True, help="the revision to compare this checkout with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8, help="per cell")
    args = ap.parse_args()
    bench_py = sys.executable
    started = time.time()
    load = os.getloadavg()
    base_rev = git("rev-parse", "--short", args.base)
    head_rev = git("rev-parse", "--short", "HEAD")
    dirty = " (uncommitted changes)" if git("status", "--porcelain", "src") else ""
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"base": [], "head": []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        tree = tmp / "base"
        git("worktree", "add", "--detach", str(tree), args.base)
        up, otlp = free_port(), free_port()
        servers = [
            subprocess.Popen([bench_py, str(BENCH / "upstream.py"), "--port", str(up)],
                             stdout=subprocess.DEVNULL),
            subprocess.Popen([bench_py, str(BENCH / "otlp_sink.py"), "--port", str(otlp)],
                             stdout=subprocess.DEVNULL),
        ]  # fmt: skip
        try:
            wait_up(f"http://127.0.0.1:{up}/health")
            direct = direct_p50(up)
            for r in range(args.rounds):
                order = [("base", tree / "src"), ("head", REPO / "src")]
                for name, src in order if r % 2 == 0 else order[::-1]:
                    runs[name].append(measure(src, tmp, up, otlp, args.seconds))
                    print(f"round {r + 1} {name}: {json.dumps(runs[name][-1])}", flush=True)
        finally:
            for s in servers:
                s.terminate()
            git("worktree", "remove", "--force", str(tree))
    res = {
        "command": "PYTHONPATH=src flock /tmp/turnout-bench.lock bench/.venv-bench/bin/python "
        + shlex.join(["bench/hot_path.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "minutes": round((time.time() - started) / 60, 1),
        "loadavg_start": load,
        "loadavg_end": os.getloadavg(),
        "base": base_rev,
        "head": head_rev + dirty,
        "direct_p50_ms": direct,
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hot_path.json").write_text(json.dumps(res, indent=1))
    (RESULTS / "hot_path.md").write_text(report(res))
    print(report(res))


def report(res: dict[str, Any]) -> str:
    def med(name: str, cell: str, key: str) -> float:
        return statistics.median(run[cell][key] for run in res["runs"][name])

    errors = sum(
        int(run[cell]["errors"]) for n in ("base", "head") for run in res["runs"][n] for cell in run
    )
    lines = [
        f"`{res['command']}`",
        "",
        "# The request path at two revisions, interleaved",
        "",
        f"Run {res['date']} ({res['minutes']} min) on {os.cpu_count()} cores shared by wrk, the "
        f"upstream, the OTLP sink and the gateway; load average (1 min) "
        f"{res['loadavg_start'][0]:.1f} at the start, {res['loadavg_end'][0]:.1f} at the end. "
        f"Base `{res['base']}`, head `{res['head']}`; {len(res['runs']['head'])} rounds, the two "
        "revisions in alternating order; medians of the rounds. Every default on: the record with "
        "full bodies, metrics, spans exported over OTLP/HTTP to a loopback sink.",
        "",
        "| cell | base req/s | head req/s | change | base CPU ms/req | head CPU ms/req | change "
        "| base added p50 ms | head added p50 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, c in CELLS:
        cell = f"{mode} c={c}"
        rb, rh = med("base", cell, "rps"), med("head", cell, "rps")
        cb, ch = med("base", cell, "cpu_ms"), med("head", cell, "cpu_ms")
        direct = res["direct_p50_ms"][mode]
        pb, ph = med("base", cell, "p50_ms") - direct, med("head", cell, "p50_ms") - direct
        added = f"{pb:.2f} | {ph:.2f}" if c == 1 else "– | –"
        lines.append(
            f"| {cell} | {rb:.0f} | {rh:.0f} | {rh / rb - 1:+.0%} | {cb:.3f} | {ch:.3f} "
            f"| {ch / cb - 1:+.0%} | {added} |"
        )
    lines += [
        "",
        "Per round, CPU ms/req (base / head): "
        + "; ".join(
            f"{mode} c={c}: "
            + ", ".join(
                f"{b[f'{mode} c={c}']['cpu_ms']:.2f}/{h[f'{mode} c={c}']['cpu_ms']:.2f}"
                for b, h in zip(res["runs"]["base"], res["runs"]["head"], strict=True)
            )
            for mode, c in CELLS
        )
        + ".",
        "",
        f"Errors: {errors} across every cell.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
