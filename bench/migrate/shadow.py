"""Shadow overhead on the primary path: added p50/p99 latency with 0% (baseline), 10% and 100% of
requests mirrored to a candidate that is 50x slower than the primary.

    flock /tmp/turnout-bench.lock .venv/bin/python bench/migrate/shadow.py

Everything runs on loopback in separate processes: the fast bench upstream (bench/upstream.py) as
the primary, a slow upstream as the candidate, and three `turnout serve` gateways that differ only
in the model's `shadow:` fraction. Blocks of requests go to the three gateways in turn, in a fresh
random order each round, so drift on a shared machine hits all three alike. Latency is measured by
the client: request written → response read in full.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv/bin/python")
COMMAND = "flock /tmp/turnout-bench.lock .venv/bin/python bench/migrate/shadow.py"
BODY = json.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
).encode()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def process(args: list[str], **kw: Any) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        args, env=env, start_new_session=True, text=True, stdout=subprocess.PIPE, **kw
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def wait_ready(port: int, path: str = "/readyz", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing ready on port {port}")


def gateway_config(primary: int, candidate_url: str, fraction: float | None, db: Path) -> str:
    shadow = (
        ""
        if fraction is None
        else f"    shadow: {{deployment: cand, fraction: {fraction}, max_in_flight: 64}}\n"
    )
    return (
        f'store: {{url: "sqlite:///{db}"}}\n'
        "deployments:\n"
        f'  primary: {{kind: openai, base_url: "http://127.0.0.1:{primary}/v1", model: m, '
        "rtt_probe_s: 0}\n"
        f'  cand: {{kind: openai, base_url: "{candidate_url}", model: m, rtt_probe_s: 0}}\n'
        "models:\n  bench:\n    deployments: [primary]\n" + shadow
    )


def block(port: int, n: int, concurrency: int) -> list[float]:
    """n requests over `concurrency` keep-alive connections; latencies in ms."""
    out: list[float] = []
    lock = threading.Lock()
    per = [n // concurrency + (i < n % concurrency) for i in range(concurrency)]

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(k):
            t0 = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", BODY, {"content-type": "application/json"})
            r = conn.getresponse()
            r.read()
            mine.append((time.perf_counter() - t0) * 1000)
            assert r.status == 200, r.status
        conn.close()
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in per]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def metric_sum(port: int, name: str, **labels: str) -> float:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    total = 0.0
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--block", type=int, default=200, help="requests per gateway per round")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--candidate-delay-s", type=float, default=0.05)
    ap.add_argument("--out", default=str(ROOT / "bench/results"))
    args = ap.parse_args()
    fractions: dict[str, float | None] = {"0% (baseline)": None, "10%": 0.1, "100%": 1.0}
    work = Path(tempfile.mkdtemp(prefix="turnout-shadow-bench-"))
    results: dict[str, Any] = {
        "command": COMMAND,
        "candidate_delay_s": args.candidate_delay_s,
        "rounds": args.rounds,
        "block": args.block,
        "cells": [],
    }
    up_port = free_port()
    with contextlib.ExitStack() as stack:
        stack.enter_context(process([PY, str(ROOT / "bench/upstream.py"), "--port", str(up_port)]))
        cand = stack.enter_context(
            process(
                [
                    PY,
                    str(ROOT / "bench/migrate/slow_upstream.py"),
                    "--delay-s",
                    str(args.candidate_delay_s),
                ]
            )
        )
        assert cand.stdout is not None
        cand_url = cand.stdout.readline().strip()
        wait_ready(up_port, "/health")
        ports: dict[str, int] = {}
        for label, fraction in fractions.items():
            port = free_port()
            cfg = work / f"gw-{port}.yaml"
            cfg.write_text(gateway_config(up_port, cand_url, fraction, work / f"gw-{port}.db"))
            stack.enter_context(
                process(
                    [PY, "-m", "turnout", "serve", "--config", str(cfg), "--port", str(port)],
                    stderr=subprocess.DEVNULL,
                )
            )
            ports[label] = port
        for port in ports.values():
            wait_ready(port)
            block(port, 100, 1)  # warm-up
        rng = random.Random(7)
        for conc in (int(c) for c in args.concurrency.split(",")):
            lat: dict[str, list[float]] = {k: [] for k in fractions}
            for r in range(args.rounds):
                order = list(fractions)
                rng.shuffle(order)
                for label in order:
                    lat[label].extend(block(ports[label], args.block, conc))
                print(f"c={conc} round {r + 1}/{args.rounds}", file=sys.stderr)
            base = lat["0% (baseline)"]
            for label, xs in lat.items():
                port = ports[label]
                results["cells"].append(
                    {
                        "concurrency": conc,
                        "mirrored": label,
                        "n": len(xs),
                        "p50_ms": round(pct(xs, 0.5), 3),
                        "p99_ms": round(pct(xs, 0.99), 3),
                        "mean_ms": round(statistics.fmean(xs), 3),
                        "added_p50_ms": round(pct(xs, 0.5) - pct(base, 0.5), 3),
                        "added_p99_ms": round(pct(xs, 0.99) - pct(base, 0.99), 3),
                    }
                )
        for label, port in ports.items():
            time.sleep(args.candidate_delay_s * 4)  # let the last shadows land
            results.setdefault("shadows", {})[label] = {
                "completed": metric_sum(port, "turnout_shadow_requests_total", outcome="completed"),
                "other_outcomes": metric_sum(port, "turnout_shadow_requests_total")
                - metric_sum(port, "turnout_shadow_requests_total", outcome="completed"),
                "skipped_in_flight": metric_sum(
                    port, "turnout_shadow_skipped_total", reason="in_flight"
                ),
                "primary_requests": metric_sum(port, "turnout_requests_total", model="bench"),
            }
    write(results, Path(args.out))
    return 0


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "migrate_shadow.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"Reproduce: `{results['command']}`",
        "",
        "# Shadow overhead on the primary path",
        "",
        f"Primary: the fast bench upstream (answers at once). Candidate: a loopback upstream that "
        f"answers after {results['candidate_delay_s'] * 1000:g} ms. Three `turnout serve` "
        "gateways, identical but for the model's shadow fraction, measured in the same run in "
        f"interleaved blocks ({results['rounds']} rounds × {results['block']} requests per "
        "gateway and concurrency). Client latency, request written → response read; *added* = "
        "this row − the baseline row at the same concurrency. Two shared cores: the client, the "
        "upstreams and three gateways share them.",
        "",
        "| concurrency | mirrored | n | p50 ms | p99 ms | mean ms | added p50 ms | added p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in results["cells"]:
        lines.append(
            f"| {c['concurrency']} | {c['mirrored']} | {c['n']} | {c['p50_ms']:.3f} | "
            f"{c['p99_ms']:.3f} | {c['mean_ms']:.3f} | {c['added_p50_ms']:+.3f} | "
            f"{c['added_p99_ms']:+.3f} |"
        )
    lines += ["", "Shadows per gateway (from its /metrics at the end):", ""]
    lines += [
        "| mirrored | primary requests | shadows completed | other outcomes | skipped (cap) |"
    ]
    lines += ["|---|---|---|---|---|"]
    for label, s in results.get("shadows", {}).items():
        lines.append(
            f"| {label} | {s['primary_requests']:.0f} | {s['completed']:.0f} | "
            f"{s['other_outcomes']:.0f} | {s['skipped_in_flight']:.0f} |"
        )
    (out / "migrate_shadow.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
