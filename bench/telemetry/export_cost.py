"""What exporting spans over OTLP costs the request path: export on against off, in one run.

Two `turnout serve` processes of this checkout — one with `telemetry.otlp_endpoint` set (spans
exported over OTLP/HTTP to a loopback receiver that decodes and counts them), one without — in
front of the fast loopback upstream (bench/upstream.py). GenAI metrics are recorded by both (they
are Prometheus counters in the process; the difference measured is the span export). wrk drives
the load (bench/wrk/chat.lua): sequential (one connection) for the added p50 over the upstream
alone, and 32 connections for throughput, alternating on/off blocks so drift falls on both.

Run: `flock /tmp/turnout-bench.lock .venv/bin/python bench/telemetry/export_cost.py` (about three
minutes); results in bench/results/telemetry_export.{md,json}.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
LUA = REPO / "bench" / "wrk" / "chat.lua"
PY = sys.executable

CONFIG = """
server: {{host: 127.0.0.1, port: {port}}}
store: {{url: "sqlite:///{db}", record_bodies: none}}
telemetry: {{otlp_endpoint: {otlp}}}
deployments:
  up: {{kind: openai, base_url: "http://127.0.0.1:{upstream}/v1", model: m, rtt_probe_s: 0}}
models:
  bench: {{deployments: [up]}}
"""

# A loopback OTLP/HTTP receiver that decodes every export and counts its spans.
RECEIVER = """
import sys
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
count = 0
async def traces(request):
    global count
    m = ExportTraceServiceRequest()
    m.ParseFromString(await request.read())
    count += sum(len(ss.spans) for rs in m.resource_spans for ss in rs.scope_spans)
    return web.Response(body=b"", content_type="application/x-protobuf")
async def spans(request):
    return web.json_response({"spans": count})
async def health(request):
    return web.Response(text="ok")
app = web.Application()
app.router.add_post("/v1/traces", traces)
app.router.add_get("/spans", spans)
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read()


def wait_up(port: int, path: str = "/healthz", timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(port, path)[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port}")


def wrk(port: int, connections: int, seconds: int) -> dict[str, Any]:
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk not found: apt-get install -y wrk (or bash bench/setup.sh)")
    argv = [exe, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout=10s", "-s", str(LUA)]
    argv.append(f"http://127.0.0.1:{port}/v1/chat/completions")
    env = dict(os.environ, BENCH_MODE="nonstream", BENCH_MODEL="bench", BENCH_THREADS="1")
    cp = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    for line in cp.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            out: dict[str, Any] = json.loads(line[len("BENCH_JSON ") :])
            out["rps"] = out["requests"] / seconds
            return out
    raise RuntimeError(f"wrk gave no result: {cp.stdout}\n{cp.stderr}")


def p50_ms(r: dict[str, Any]) -> float:
    return float(r["latency_us"]["p50"]) / 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=10, help="per block")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        try:
            up = free_port()
            cmd = [PY, str(REPO / "bench" / "upstream.py"), "--port", str(up)]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
            wait_up(up, "/health")
            rx = free_port()
            procs.append(subprocess.Popen([PY, "-c", RECEIVER, str(rx)]))
            wait_up(rx, "/health")
            ports = {"off": free_port(), "on": free_port()}
            for name, port in ports.items():
                otlp = f'"http://127.0.0.1:{rx}"' if name == "on" else "null"
                cfg = tmp / f"{name}.yaml"
                text = CONFIG.format(port=port, db=tmp / f"{name}.db", upstream=up, otlp=otlp)
                cfg.write_text(text)
                env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
                serve = [PY, "-m", "turnout", "serve", "--config", str(cfg)]
                procs.append(subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL))
                wait_up(port)
            direct: list[float] = []
            seq: dict[str, list[float]] = {n: [] for n in ports}
            rps: dict[str, list[float]] = {n: [] for n in ports}
            sent = {n: 0 for n in ports}
            for n, port in ports.items():
                sent[n] += wrk(port, 4, 3)["requests"]  # warm-up
            for r in range(args.rounds):
                direct.append(p50_ms(wrk(up, 1, args.seconds)))
                order = list(ports) if r % 2 == 0 else list(reversed(ports))
                for n in order:
                    one = wrk(ports[n], 1, args.seconds)
                    many = wrk(ports[n], 32, args.seconds)
                    seq[n].append(p50_ms(one))
                    rps[n].append(many["rps"])
                    sent[n] += one["requests"] + many["requests"]
                print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                    f"{n} p50 {seq[n][-1]:.3f} ms, {rps[n][-1]:.0f} req/s" for n in ports
                ), flush=True)  # fmt: skip
            time.sleep(6)  # the batch exporter's schedule: let the last batch go out
            received = json.loads(get(rx, "/spans")[1])["spans"]
        finally:
            for p in reversed(procs):
                p.terminate()
            for p in procs:
                p.wait(timeout=30)
    base = statistics.median(direct)
    results: dict[str, Any] = {
        "rounds": args.rounds,
        "seconds_per_block": args.seconds,
        "upstream_p50_ms": base,
        "gateways": {
            n: {
                "added_p50_ms": statistics.median(seq[n]) - base,
                "p50_ms_per_round": seq[n],
                "rps_c32": statistics.median(rps[n]),
                "rps_c32_per_round": rps[n],
                "requests": sent[n],
            }
            for n in ports
        },
        "spans_received": received,
        "spans_expected": 2 * sent["on"],  # a request span and a call span each
        "cpus": os.cpu_count(),
    }
    g = results["gateways"]
    lines = [
        "# Cost of exporting spans over OTLP (telemetry export on vs off)",
        "",
        "One run of `bench/telemetry/export_cost.py`: two `turnout serve` processes of this"
        " checkout in front of bench/upstream.py, one exporting spans over OTLP/HTTP to a loopback"
        " receiver (decoding every protobuf), one without an endpoint; GenAI metrics recorded by"
        f" both. wrk, {args.rounds} alternating rounds of {args.seconds} s blocks: one connection"
        " for the added p50 (over the upstream's own p50), 32 connections for throughput."
        f" {os.cpu_count()} cores shared by the load generator, the upstream, both gateways"
        " and the receiver.",
        "",
        "| export | added p50, sequential (ms) | req/s at concurrency 32 |",
        "|---|---|---|",
    ]
    for n in ("off", "on"):
        lines.append(f"| {n} | {g[n]['added_p50_ms']:.3f} | {g[n]['rps_c32']:.0f} |")
    change = (g["on"]["rps_c32"] / g["off"]["rps_c32"] - 1) * 100
    delta = g["on"]["added_p50_ms"] - g["off"]["added_p50_ms"]
    lines += [
        "",
        f"Export on against off: added p50 {delta:+.3f} ms, throughput {change:+.1f}%."
        f" The receiver decoded {received} spans of about"
        f" {results['spans_expected']} expected (two per request counted by wrk, which leaves out"
        " those still in flight when a block ends): none lost. The machine was shared with other"
        " benchmarks and test runs; compare the rounds.",
        "",
        f"Per round, p50 ms — off: {', '.join(f'{x:.3f}' for x in g['off']['p50_ms_per_round'])};"
        f" on: {', '.join(f'{x:.3f}' for x in g['on']['p50_ms_per_round'])}. req/s — off:"
        f" {', '.join(f'{x:.0f}' for x in g['off']['rps_c32_per_round'])}; on:"
        f" {', '.join(f'{x:.0f}' for x in g['on']['rps_c32_per_round'])}.",
    ]
    (RESULTS / "telemetry_export.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "telemetry_export.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
