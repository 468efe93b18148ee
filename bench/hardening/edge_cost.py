"""What checking every field at the edge costs a request, against an earlier commit, in one run.

Two `turnout serve` processes — this checkout's code and the code of `--before` (a git worktree
of that commit, run with the same venv) — in front of the fast loopback upstream
(bench/upstream.py). One sequential keep-alive client sends the same request to each in turn,
in alternating blocks, so drift of the machine's speed falls on both alike. Reported: latency
percentiles per gateway and body, the difference of the medians, and the in-process cost of the
edge checks alone (`check_request`) per body.

Run: `.venv/bin/python bench/hardening/edge_cost.py` (about two minutes); results in
bench/results/hardening_edge.{md,json}.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
PY = sys.executable

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{i}",
            "description": "Looks something up.",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
                "required": ["q"],
            },
        },
    }
    for i in range(5)
]
BODIES: dict[str, dict[str, Any]] = {
    "small chat": {
        "model": "bench",
        "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
        "max_tokens": 32,
    },
    "agent turn (20 messages, 5 tools)": {
        "model": "bench",
        "messages": [{"role": "system", "content": "You are a careful assistant."}]
        + [
            {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " * 20}
            for i in range(19)
        ],
        "tools": TOOLS,
        "tool_choice": "auto",
        "temperature": 0.2,
        "max_tokens": 64,
    },
}
CONFIG = """
server: {{host: 127.0.0.1, port: {port}}}
store: {{url: "sqlite:///{db}", record_bodies: full}}
deployments:
  up: {{kind: openai, base_url: "http://127.0.0.1:{upstream}/v1", model: m, rtt_probe_s: 0}}
models:
  bench: {{deployments: [up]}}
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(port: int, path: str = "/healthz", timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port}")


def serve(src: Path, port: int, upstream: int, tmp: Path, name: str) -> subprocess.Popen[bytes]:
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(CONFIG.format(port=port, db=tmp / f"{name}.db", upstream=upstream))
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [PY, "-m", "turnout", "serve", "--config", str(cfg)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_up(port)
    return proc


def block(conn: http.client.HTTPConnection, payload: bytes, n: int) -> list[float]:
    out = []
    headers = {"content-type": "application/json"}
    # A fresh connection per block: the other gateway's block may outlast the keep-alive timeout.
    conn.close()
    conn.request("POST", "/v1/chat/completions", payload, headers)
    conn.getresponse().read()
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", payload, headers)
        resp = conn.getresponse()
        resp.read()
        out.append(time.perf_counter() - t)
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status}")
    return out


def edge_micro(src: Path) -> dict[str, float]:
    """µs per `check_request` call, median of 7×200, in a fresh interpreter on `src`."""
    code = f"""
import json, statistics, timeit
from turnout.backends.base import Operation
from turnout.server.wire import check_request
bodies = json.loads({json.dumps(json.dumps(BODIES))})
out = {{}}
for name, body in bodies.items():
    runs = timeit.repeat(lambda: check_request(body, Operation.CHAT), number=200, repeat=7)
    out[name] = statistics.median(runs) / 200 * 1e6
print(json.dumps(out))
"""
    env = dict(os.environ, PYTHONPATH=str(src))
    done = subprocess.run([PY, "-c", code], env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="a97b41a", help="the commit to compare against")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--block", type=int, default=300, help="requests per gateway per round")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        worktree = tmp / "before"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), args.before],
            check=True,
            capture_output=True,
        )
        try:
            up_port = free_port()
            up = [PY, str(REPO / "bench" / "upstream.py"), "--port", str(up_port)]
            procs.append(subprocess.Popen(up, stdout=subprocess.DEVNULL))
            wait_up(up_port, "/health")
            ports = {"before": free_port(), "after": free_port()}
            srcs = {"before": worktree / "src", "after": REPO / "src"}
            for name in ports:
                procs.append(serve(srcs[name], ports[name], up_port, tmp, name))
            results: dict[str, Any] = {"bodies": {}, "micro_us": {}}
            for name, src in srcs.items():
                print(f"edge checks in-process: {name}", flush=True)
                results["micro_us"][name] = edge_micro(src)
            for body_name, body in BODIES.items():
                payload = json.dumps(body).encode()
                conns = {n: http.client.HTTPConnection("127.0.0.1", p) for n, p in ports.items()}
                lat: dict[str, list[float]] = {n: [] for n in ports}
                for n in ports:
                    block(conns[n], payload, 200)  # warm-up
                for r in range(args.rounds):
                    order = list(ports) if r % 2 == 0 else list(reversed(ports))
                    for n in order:
                        lat[n] += block(conns[n], payload, args.block)
                    print(f"{body_name}: round {r + 1}/{args.rounds}", flush=True)
                results["bodies"][body_name] = {
                    n: {
                        "p50_ms": pct(xs, 50),
                        "p90_ms": pct(xs, 90),
                        "p99_ms": pct(xs, 99),
                        "n": len(xs),
                    }
                    for n, xs in lat.items()
                }
                # Per-round medians: how much the difference moves between rounds.
                per_round = [
                    statistics.median(lat["after"][i : i + args.block])
                    - statistics.median(lat["before"][i : i + args.block])
                    for i in range(0, len(lat["after"]), args.block)
                ]
                results["bodies"][body_name]["round_diffs_ms"] = [x * 1000 for x in per_round]
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=10)
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)],
                capture_output=True,
            )
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    results["before"], results["after"] = args.before, head
    write(results, args)


def write(results: dict[str, Any], args: argparse.Namespace) -> None:
    lines = [
        "# Cost of the edge checks on the request path",
        "",
        f"`{results['after']}` (this code) against `{results['before']}` (before the edge checks),"
        " two `turnout serve` processes side by side in one run, in front of bench/upstream.py;"
        f" one sequential keep-alive client, {args.rounds} alternating rounds of {args.block}"
        " requests each. Record with full bodies, metrics on, no tracing exporter.",
        "",
        "Command: `.venv/bin/python bench/hardening/edge_cost.py`",
        "",
        "| body | gateway | p50 ms | p90 ms | p99 ms | requests |",
        "|---|---|---|---|---|---|",
    ]
    for body, r in results["bodies"].items():
        for n in ("before", "after"):
            x = r[n]
            lines.append(
                f"| {body} | {n} | {x['p50_ms']:.3f} | {x['p90_ms']:.3f} | {x['p99_ms']:.3f} |"
                f" {x['n']} |"
            )
    lines += [
        "",
        "| body | p50 after − before, ms | per-round differences of medians, ms |",
        "|---|---|---|",
    ]
    for body, r in results["bodies"].items():
        diff = r["after"]["p50_ms"] - r["before"]["p50_ms"]
        rounds = ", ".join(f"{x:+.3f}" for x in r["round_diffs_ms"])
        lines.append(f"| {body} | {diff:+.3f} | {rounds} |")
    lines += [
        "",
        "In-process cost of `check_request` alone (µs per call, median of 7×200):",
        "",
        "| body | before | after |",
        "|---|---|---|",
    ]
    for body in BODIES:
        b, a = results["micro_us"]["before"][body], results["micro_us"]["after"][body]
        lines.append(f"| {body} | {b:.1f} | {a:.1f} |")
    lines.append("")
    (RESULTS / "hardening_edge.md").write_text("\n".join(lines))
    (RESULTS / "hardening_edge.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
