"""What client keys cost a request: auth off against auth on, in one run, without Redis.

Three `turnout serve` processes of this checkout in front of the fast loopback upstream
(bench/upstream.py): `off` (no keys), `key` (a key with no limits: the lookup only) and
`limits` (a key with rpm, tpm and a budget, all far from reached: lookup, admission and
settling). One sequential keep-alive client sends the same small chat request to each in turn,
in alternating blocks, so drift of the machine's speed falls on all alike. Reported: latency
percentiles per gateway, the difference of the medians against `off` (overall and per round),
and the in-process cost of `authenticate` + `admit` alone.

Run: `flock /tmp/turnout-bench.lock .venv/bin/python bench/auth/overhead.py` (about two
minutes); results in bench/results/auth_overhead.{md,json}.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
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
BODY = json.dumps(
    {
        "model": "bench",
        "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
        "max_tokens": 32,
    }
).encode()
CONFIG = """
server: {{host: 127.0.0.1, port: {port}}}
store: {{url: "sqlite:///{db}", record_bodies: full}}
deployments:
  up: {{kind: openai, base_url: "http://127.0.0.1:{upstream}/v1", model: m, rtt_probe_s: 0,
        price: {{input_per_mtok: 0.15, output_per_mtok: 0.6}}}}
models:
  bench: {{deployments: [up]}}
auth: {{mode: {mode}}}
"""
KEY_FLAGS = {
    "key": [],
    "limits": ["--rpm", "1000000", "--tpm", "1000000000", "--budget-usd", "1000000"],
}


def free_port() -> int:
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


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO / "src"))


def make_key(db: Path, flags: list[str]) -> str:
    cmd = [PY, "-m", "turnout", "keys", "create", "--name", "bench", "--json"]
    cmd += ["--store", f"sqlite:///{db}", *flags]
    done = subprocess.run(cmd, env=env(), capture_output=True, text=True, check=True)
    return str(json.loads(done.stdout)["key"])


def serve(name: str, port: int, upstream: int, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    db = tmp / f"{name}.db"
    key = make_key(db, KEY_FLAGS[name]) if name in KEY_FLAGS else ""
    cfg = tmp / f"{name}.yaml"
    mode = "none" if name == "off" else "keys"
    cfg.write_text(CONFIG.format(port=port, db=db, upstream=upstream, mode=mode))
    cmd = [PY, "-m", "turnout", "serve", "--config", str(cfg)]
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_up(port)
    return proc, key


def block(conn: http.client.HTTPConnection, key: str, n: int) -> list[float]:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    conn.close()  # a fresh connection per block: the others' blocks may outlast keep-alive
    conn.request("POST", "/v1/chat/completions", BODY, headers)
    conn.getresponse().read()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", BODY, headers)
        resp = conn.getresponse()
        resp.read()
        out.append(time.perf_counter() - t)
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status}")
    return out


def micro() -> dict[str, float]:
    """µs per authenticate + admit (+ settle for limits) in-process, median of 7×2000."""
    code = """
import asyncio, json, statistics, tempfile, time
from pathlib import Path
from turnout.auth import manage
from turnout.auth.guard import Guard
from turnout.auth.keys import KeySpec
from turnout.config.schema import AuthConfig
from turnout.store.keys import open_keys
from turnout.telemetry.metrics import Metrics

body = {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 32}
async def main():
    out = {}
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 't.db'}"
        store = open_keys(url)
        plain = manage.create(store, KeySpec(name="k"))[1]
        limited = manage.create(store, KeySpec(name="l", rpm=10**9, tpm=10**12, budget_usd=1e9))[1]
        store.close()
        guard = Guard(AuthConfig(), "keys", url, Metrics())
        await guard.start()
        for name, key in (("key", plain), ("limits", limited)):
            headers = {"authorization": f"Bearer {key}"}
            runs = []
            for _ in range(7):
                t = time.perf_counter()
                for i in range(2000):
                    caller = guard.authenticate(headers)
                    await guard.admit(caller, "bench", body, str(i))
                runs.append((time.perf_counter() - t) / 2000 * 1e6)
            out[name] = statistics.median(runs)
        await guard.close()
    print(json.dumps(out))
asyncio.run(main())
"""
    done = subprocess.run([PY, "-c", code], env=env(), capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--block", type=int, default=300, help="requests per gateway per round")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    names = ("off", "key", "limits")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        try:
            up_port = free_port()
            up = [PY, str(REPO / "bench" / "upstream.py"), "--port", str(up_port)]
            procs.append(subprocess.Popen(up, stdout=subprocess.DEVNULL))
            wait_up(up_port, "/health")
            ports = {n: free_port() for n in names}
            keys: dict[str, str] = {}
            for n in names:
                proc, keys[n] = serve(n, ports[n], up_port, tmp)
                procs.append(proc)
            micro_us = micro()
            conns = {n: http.client.HTTPConnection("127.0.0.1", p) for n, p in ports.items()}
            lat: dict[str, list[float]] = {n: [] for n in names}
            for n in names:
                block(conns[n], keys[n], 200)  # warm-up
            for r in range(args.rounds):
                order = names[r % 3 :] + names[: r % 3]
                for n in order:
                    lat[n] += block(conns[n], keys[n], args.block)
                print(f"round {r + 1}/{args.rounds}", flush=True)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=15)
    b = args.block
    results: dict[str, Any] = {
        "requests_per_gateway": len(lat["off"]),
        "gateways": {
            n: {"p50_ms": pct(xs, 50), "p90_ms": pct(xs, 90), "p99_ms": pct(xs, 99)}
            for n, xs in lat.items()
        },
        "added_p50_ms": {},
        "per_round_added_p50_ms": {},
        "in_process_us": micro_us,
        "counters": "the in-memory stand-in (turnout.auth.local_stub), one gateway alone",
        "load_average": os.getloadavg()[0],
    }
    off = statistics.median(lat["off"])
    for n in ("key", "limits"):
        results["added_p50_ms"][n] = (statistics.median(lat[n]) - off) * 1000
        results["per_round_added_p50_ms"][n] = [
            (statistics.median(lat[n][i : i + b]) - statistics.median(lat["off"][i : i + b])) * 1000
            for i in range(0, len(lat["off"]), b)
        ]
    (RESULTS / "auth_overhead.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "auth_overhead.md").write_text(report(results, args.rounds, b))
    print(report(results, args.rounds, b))


def report(res: dict[str, Any], rounds: int, block_n: int) -> str:
    lines = [
        "# What client keys cost a request (no Redis)",
        "",
        f"Sequential keep-alive client, small chat request, {rounds} rounds × {block_n} requests "
        "per gateway in rotating order, loopback upstream; three gateways of the same code.",
        "",
        "| gateway | p50 ms | p90 ms | p99 ms | added p50 vs off | per-round added p50 |",
        "|---|---|---|---|---|---|",
    ]
    for n, g in res["gateways"].items():
        added = res["added_p50_ms"].get(n)
        rounds_txt = res["per_round_added_p50_ms"].get(n)
        span = (
            f"{min(rounds_txt):+.3f} … {max(rounds_txt):+.3f} (median "
            f"{statistics.median(rounds_txt):+.3f})"
            if rounds_txt
            else "-"
        )
        lines.append(
            f"| {n} | {g['p50_ms']:.3f} | {g['p90_ms']:.3f} | {g['p99_ms']:.3f} | "
            f"{'-' if added is None else f'{added:+.3f} ms'} | {span} |"
        )
    micro_us = res["in_process_us"]
    lines += [
        "",
        "`off`: `auth: {mode: none}`; `key`: a key without limits (lookup only); `limits`: a key "
        "with rpm, tpm and a budget far from reached (lookup, admission, settling).",
        "",
        "In-process, per request: authenticate + admit "
        + ", ".join(f"{n} {us:.1f} µs" for n, us in micro_us.items())
        + ".",
        "",
        f"Counters: {res['counters']}. Load average at the end of the run: "
        f"{res['load_average']:.1f} on {os.cpu_count()} cores (the machine is shared), so the "
        "per-round spread is wide; the median of per-round differences is the steadier figure.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
