"""What client keys and their limits cost a request: auth off against auth on, in one run,
with the limits counted in this process and in Redis.

Gateways (`turnout serve` processes of this checkout) in front of the fast loopback upstream
(bench/upstream.py), all at once:

- `off`: no keys; `key`: a key with no limits (the lookup only); `limits`: a key with rpm, tpm
  and a budget, all far from reached (lookup, admission, settling), counted by `LocalLimits`;
- `off+redis`: no keys, `state.url` set (routing state shared through Redis);
  `limits+redis`: the `limits` key with `state.url` set, counted by `SharedLimits` (Lua in a
  `redis-server` this bench starts on loopback).

1. Sequential: one keep-alive client sends the same small chat request to each gateway in
   turn, in rotating blocks, so drift of the machine's speed falls on all alike; latency
   percentiles and the difference of medians against `off` (and `off+redis`), overall and
   per round.
2. Throughput: a closed loop of 32 connections (wrk, bench/wrk/chat.lua, as bench/overhead.py
   drives it) against one `off`, `limits`, `off+redis` and `limits+redis` gateway each, and
   two `limits+redis` gateways sharing the Redis and the record file, 16 connections each,
   with the same key.
3. In-process: `authenticate` + `admit` (and `settle`) alone, with `LocalLimits` and with
   `SharedLimits`.

Run: `PYTHONPATH=src flock /tmp/turnout-bench.lock .venv/bin/python bench/auth/overhead.py`
(about seven minutes; `--quick` for a trial); results in bench/results/auth_overhead.{md,json}.
Needs `redis-server` and `wrk` (Debian packages).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
sys.path.insert(0, str(REPO / "bench"))

from gateway_overhead.procs import cpu_seconds  # noqa: E402
from gateway_overhead.targets import Target  # noqa: E402
from gateway_overhead.wrk import run_wrk  # noqa: E402

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
LIMIT_FLAGS = ["--rpm", "1000000", "--tpm", "1000000000", "--budget-usd", "1000000"]


@dataclass(frozen=True)
class Spec:
    key_flags: list[str] | None  # None: auth off
    redis_db: int | None  # None: no state.url


# The two Redis gateways use separate databases of one redis-server, so `off+redis`'s routing
# state and the `limits+redis` replicas' counters never meet.
GATEWAYS: dict[str, Spec] = {
    "off": Spec(None, None),
    "key": Spec([], None),
    "limits": Spec(LIMIT_FLAGS, None),
    "off+redis": Spec(None, 1),
    "limits+redis": Spec(LIMIT_FLAGS, 0),
}
TARGETS_MS = {"no Redis": 0.1, "Redis": 0.3}


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


def command_line(argv: list[str]) -> str:
    """The command as run, without this machine's paths."""
    return (
        "PYTHONPATH=src flock /tmp/turnout-bench.lock .venv/bin/python "
        + shlex.join(["bench/auth/overhead.py", *argv])
    ).strip()


class Redis:
    """A `redis-server` on a free loopback port, nothing written to disk."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(folder),
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def make_key(db: Path, flags: list[str]) -> str:
    cmd = [PY, "-m", "turnout", "keys", "create", "--name", "bench", "--json"]
    cmd += ["--store", f"sqlite:///{db}", *flags]
    done = subprocess.run(cmd, env=env(), capture_output=True, text=True, check=True)
    return str(json.loads(done.stdout)["key"])


@dataclass
class Gateway:
    name: str
    port: int
    key: str
    proc: subprocess.Popen[bytes]


def serve(name: str, db: Path, upstream: int, tmp: Path, redis: Redis) -> Gateway:
    """A gateway of `name`'s spec on a free port, recording to `db` (which already holds its
    key, if it has one)."""
    spec = GATEWAYS[name.split("#")[0]]
    port = free_port()
    text = CONFIG.format(
        port=port, db=db, upstream=upstream, mode="none" if spec.key_flags is None else "keys"
    )
    if spec.redis_db is not None:
        text += f'state: {{url: "{redis.url(spec.redis_db)}"}}\n'
    safe = name.replace("+", "_").replace("#", "_")
    cfg = tmp / f"{safe}.yaml"
    cfg.write_text(text)
    log = (tmp / f"{safe}.log").open("wb")
    cmd = [PY, "-m", "turnout", "serve", "--config", str(cfg)]
    proc = subprocess.Popen(cmd, env=env(), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_up(port)
    return Gateway(name, port, "", proc)


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


MICRO = """
import asyncio, json, statistics, sys, tempfile, time
from pathlib import Path
from turnout.auth import manage
from turnout.auth.guard import Guard, predicted_tokens
from turnout.auth.keys import KeySpec
from turnout.auth.limits import KeyLimits
from turnout.config.schema import AuthConfig
from turnout.store.keys import open_keys
from turnout.telemetry.metrics import Metrics

redis_url, n = sys.argv[1], int(sys.argv[2])
body = {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 32}
predicted = predicted_tokens(body)

async def measure(guard, key):
    headers = {"authorization": f"Bearer {key}"}
    admit, settle = [], []
    cpu0 = time.process_time()
    for i in range(n):
        t0 = time.perf_counter()
        caller = guard.authenticate(headers)
        await guard.admit(caller, "bench", body, str(i))
        admit.append((time.perf_counter() - t0) * 1e6)
        record = guard.ring().by_id[caller.key_id]
        if record.rpm is not None:
            limits = KeyLimits(record.id, record.rpm, record.tpm, record.budget_usd,
                               record.budget_period_s, record.alert_at)
            t1 = time.perf_counter()
            await guard.limits.settle(limits, predicted, predicted - 5, 1e-6)
            settle.append((time.perf_counter() - t1) * 1e6)
    cpu = (time.process_time() - cpu0) / n * 1e6
    out = {"admit_p50_us": statistics.median(admit), "admit_p99_us": sorted(admit)[int(0.99 * n)],
           "cpu_us_per_request": cpu}
    if settle:
        out["settle_p50_us"] = statistics.median(settle)
        out["settle_p99_us"] = sorted(settle)[int(0.99 * n)]
    return out

async def main():
    out = {}
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 't.db'}"
        store = open_keys(url)
        plain = manage.create(store, KeySpec(name="k"))[1]
        limited = manage.create(store, KeySpec(name="l", rpm=10**9, tpm=10**12, budget_usd=1e9))[1]
        store.close()
        for name, key, state in (("key", plain, None), ("limits", limited, None),
                                 ("limits+redis", limited, redis_url)):
            guard = Guard(AuthConfig(), "keys", url, Metrics(), state)
            await guard.start()
            await measure(guard, key)  # warm-up
            out[name] = await measure(guard, key)
            await guard.close()
    # The floor under SharedLimits: one PING from the same Redis client, the same way.
    from turnout.auth.resp import Redis
    client = Redis(redis_url)
    for _ in range(2):
        wall = []
        cpu0 = time.process_time()
        for _ in range(n):
            t0 = time.perf_counter()
            await client.call("PING")
            wall.append((time.perf_counter() - t0) * 1e6)
        cpu = (time.process_time() - cpu0) / n * 1e6
    await client.close()
    out["redis ping"] = {"admit_p50_us": statistics.median(wall),
                         "admit_p99_us": sorted(wall)[int(0.99 * n)], "cpu_us_per_request": cpu}
    print(json.dumps(out))
asyncio.run(main())
"""


def micro(redis_url: str, n: int) -> dict[str, dict[str, float]]:
    """µs per authenticate + admit, and per settle, in-process, each call timed alone."""
    cmd = [PY, "-c", MICRO, redis_url, str(n)]
    done = subprocess.run(cmd, env=env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"in-process measurement failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000


def sequential(
    gws: dict[str, Gateway], redis_pid: int, rounds: int, block_n: int
) -> tuple[dict[str, list[float]], dict[str, dict[str, float]], list[float]]:
    """Latencies per gateway; CPU ms per request of the gateway and of Redis (read from /proc
    around each block: it grows with the work done, not with the wait for a busy core)."""
    names = list(GATEWAYS)
    conns = {n: http.client.HTTPConnection("127.0.0.1", gws[n].port) for n in names}
    lat: dict[str, list[float]] = {n: [] for n in names}
    cpu = {n: {"gateway": 0.0, "redis": 0.0} for n in names}
    for n in names:
        block(conns[n], gws[n].key, 200)  # warm-up
    loads = []
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            pid = gws[n].proc.pid
            gw0, redis0 = cpu_seconds(pid), cpu_seconds(redis_pid)
            lat[n] += block(conns[n], gws[n].key, block_n)
            cpu[n]["gateway"] += cpu_seconds(pid) - gw0
            cpu[n]["redis"] += cpu_seconds(redis_pid) - redis0
        loads.append(os.getloadavg()[0])
        print(f"sequential round {r + 1}/{rounds} (load {loads[-1]:.1f})", flush=True)
    per_req = {
        n: {f"{k}_cpu_ms_per_req": v * 1000 / len(lat[n]) for k, v in c.items()}
        for n, c in cpu.items()
    }
    return lat, per_req, loads


def added(lat: dict[str, list[float]], name: str, base: str, block_n: int) -> dict[str, Any]:
    a, b = lat[name], lat[base]
    per_round = [
        (statistics.median(a[i : i + block_n]) - statistics.median(b[i : i + block_n])) * 1000
        for i in range(0, len(b), block_n)
    ]
    return {
        "overall_ms": (statistics.median(a) - statistics.median(b)) * 1000,
        "per_round_ms": per_round,
        "per_round_median_ms": statistics.median(per_round),
    }


def wrk_cell(gws: list[Gateway], pids: list[int], connections: int, seconds: int) -> dict[str, Any]:
    """One closed-loop run, the connections split evenly across `gws`, one wrk per gateway."""
    targets = [
        Target(g.name, f"http://127.0.0.1:{g.port}/v1/chat/completions", "bench", g.key or None)
        for g in gws
    ]
    share = connections // len(gws)
    cpu0 = {pid: cpu_seconds(pid) for pid in pids}
    with concurrent.futures.ThreadPoolExecutor(len(gws)) as pool:
        runs = list(pool.map(lambda t: run_wrk(t, "nonstream", share, seconds), targets))
    cpu = {pid: cpu_seconds(pid) - cpu0[pid] for pid in pids}
    requests = sum(r.requests for r in runs)
    duration = max(r.raw["duration_us"] for r in runs) / 1e6
    return {
        "requests": requests,
        "rps": requests / duration,
        "per_gateway": [
            {
                "rps": r.requests / (r.raw["duration_us"] / 1e6),
                "p50_ms": r.lat_ms("p50"),
                "p99_ms": r.lat_ms("p99"),
            }
            for r in runs
        ],
        "errors": sum(r.error_total for r in runs),
        "cpu_ms_per_req": {str(pid): cpu[pid] * 1000 / max(requests, 1) for pid in pids},
    }


def throughput(
    cells: dict[str, list[Gateway]],
    redis_pid: int,
    reps: int,
    seconds: int,
    warmup: int,
) -> dict[str, Any]:
    names = list(cells)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(reps):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            gws = cells[n]
            pids = [g.proc.pid for g in gws] + ([redis_pid] if "redis" in n else [])
            if warmup:
                wrk_cell(gws, pids, 32, warmup)
            run = wrk_cell(gws, pids, 32, seconds)
            run["load_average"] = os.getloadavg()[0]
            runs[n].append(run)
            print(
                f"c=32 {n}: {run['rps']:.0f} req/s, errors {run['errors']} "
                f"(load {run['load_average']:.1f})",
                flush=True,
            )
    out: dict[str, Any] = {}
    for n, rs in runs.items():
        best = sorted(rs, key=lambda x: x["rps"])[len(rs) // 2]  # the median run
        gw_pids = [str(g.proc.pid) for g in cells[n]]
        out[n] = {
            "gateways": len(cells[n]),
            "rps_median": best["rps"],
            "rps_runs": [x["rps"] for x in rs],
            "per_gateway": best["per_gateway"],
            "errors": sum(x["errors"] for x in rs),
            "gateway_cpu_ms_per_req": sum(best["cpu_ms_per_req"][p] for p in gw_pids),
            "redis_cpu_ms_per_req": best["cpu_ms_per_req"].get(str(redis_pid)),
            "runs": rs,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=16)
    ap.add_argument("--block", type=int, default=300, help="requests per gateway per round")
    ap.add_argument("--reps", type=int, default=3, help="closed-loop runs per setup")
    ap.add_argument("--seconds", type=int, default=10, help="per closed-loop run")
    ap.add_argument("--warmup", type=int, default=2, help="seconds before each closed-loop run")
    ap.add_argument("--micro", type=int, default=3000, help="in-process calls per measurement")
    ap.add_argument("--quick", action="store_true", help="a short trial; results not written")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.block, args.reps, args.seconds, args.warmup, args.micro = (
            3, 100, 1, 3, 1, 500,
        )  # fmt: skip
    started = time.time()
    load_start = os.getloadavg()
    gws: dict[str, Gateway] = {}
    upstream: subprocess.Popen[bytes] | None = None
    redis: Redis | None = None
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        try:
            redis = Redis(tmp)
            up_port = free_port()
            up = [PY, str(REPO / "bench" / "upstream.py"), "--port", str(up_port)]
            upstream = subprocess.Popen(up, stdout=subprocess.DEVNULL)
            wait_up(up_port, "/health")
            for name, spec in GATEWAYS.items():
                db = tmp / f"{name.replace('+', '_')}.db"
                key = make_key(db, spec.key_flags) if spec.key_flags is not None else ""
                gws[name] = serve(name, db, up_port, tmp, redis)
                gws[name].key = key
            micro_us = micro(redis.url(2), args.micro)
            print(f"in-process: {json.dumps(micro_us)}", flush=True)
            lat, seq_cpu, loads = sequential(gws, redis.proc.pid, args.rounds, args.block)
            # The second replica: the same record file, Redis database and key as the first.
            lr = gws["limits+redis"]
            twin = serve("limits+redis#2", tmp / "limits_redis.db", up_port, tmp, redis)
            twin.key = lr.key
            gws[twin.name] = twin
            cells = {
                "off": [gws["off"]],
                "limits": [gws["limits"]],
                "off+redis": [gws["off+redis"]],
                "limits+redis": [lr],
                "limits+redis ×2": [lr, twin],
            }
            tput = throughput(cells, redis.proc.pid, args.reps, args.seconds, args.warmup)
        except BaseException:
            for g in gws.values():
                log = tmp / f"{g.name.replace('+', '_').replace('#', '_')}.log"
                if log.exists():
                    print(f"--- {g.name} log tail\n" + log.read_text()[-1500:], file=sys.stderr)
            raise
        finally:
            procs = [g.proc for g in gws.values()] + [p for p in (upstream,) if p is not None]
            procs += [redis.proc] if redis is not None else []
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=15)
    b = args.block
    results: dict[str, Any] = {
        "command": command_line(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "minutes": round((time.time() - started) / 60, 1),
        "cores": os.cpu_count(),
        "load_average": {
            "start_1m": load_start[0],
            "end_1m": os.getloadavg()[0],
            "per_round_1m": loads,
        },
        "sequential": {
            "rounds": args.rounds,
            "block": b,
            "requests_per_gateway": len(lat["off"]),
            "gateways": {
                n: {"p50_ms": pct(xs, 50), "p90_ms": pct(xs, 90), "p99_ms": pct(xs, 99)}
                | seq_cpu[n]
                for n, xs in lat.items()
            },
            "added_p50_vs_off": {
                n: added(lat, n, "off", b) for n in ("key", "limits", "off+redis", "limits+redis")
            },
            "added_p50_vs_off_redis": {"limits+redis": added(lat, "limits+redis", "off+redis", b)},
        },
        "throughput_c32": {
            "reps": args.reps,
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "setups": tput,
        },
        "in_process_us": micro_us,
    }
    results["targets"] = verdicts(results["sequential"])
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "auth_overhead.json").write_text(json.dumps(results, indent=2) + "\n")
    text = report(results)
    print(text)
    if args.quick:
        print("(--quick: results not written)")
        return
    (RESULTS / "auth_overhead.md").write_text(text)


def verdicts(seq: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target against the median of per-round differences (the steadier figure on a
    shared machine); the overall difference of medians is given beside it."""
    rows = [
        ("key lookup, no Redis", "key", "off", TARGETS_MS["no Redis"]),
        ("key + limits, no Redis", "limits", "off", TARGETS_MS["no Redis"]),
        ("key + limits in Redis, vs off", "limits+redis", "off", TARGETS_MS["Redis"]),
        ("key + limits in Redis, vs off+redis", "limits+redis", "off+redis", TARGETS_MS["Redis"]),
    ]
    out = []
    for what, name, base, target in rows:
        table = seq["added_p50_vs_off"] if base == "off" else seq["added_p50_vs_off_redis"]
        a = table[name]
        out.append(
            {
                "what": what,
                "gateway": name,
                "against": base,
                "target_ms": target,
                "per_round_median_ms": a["per_round_median_ms"],
                "overall_ms": a["overall_ms"],
                "met": a["per_round_median_ms"] <= target,
                "overall_met": a["overall_ms"] <= target,
            }
        )
    return out


def _span(xs: list[float]) -> str:
    return f"{min(xs):+.3f} … {max(xs):+.3f}"


def report(res: dict[str, Any]) -> str:
    seq, tput = res["sequential"], res["throughput_c32"]
    load = res["load_average"]
    lines = [
        f"`{res['command']}`",
        "",
        "# What client keys and limits cost a request, with and without Redis",
        "",
        f"Run {res['started']} ({res['minutes']} min), {res['cores']} cores shared with other "
        f"work: load average (1 min) {load['start_1m']:.1f} at the start, "
        f"{min(load['per_round_1m']):.1f} … {max(load['per_round_1m']):.1f} during the "
        f"sequential rounds, {load['end_1m']:.1f} at the end.",
        "",
        "## Targets",
        "",
        "| what | against | target | added p50 (median of rounds) | overall | met? |",
        "|---|---|---|---|---|---|",
    ]
    for v in res["targets"]:
        met = "met" if v["met"] else "**NOT met**"
        if v["met"] != v["overall_met"]:
            met += " (overall: " + ("met" if v["overall_met"] else "not met") + ")"
        lines.append(
            f"| {v['what']} | `{v['against']}` | ≤ +{v['target_ms']:.1f} ms | "
            f"{v['per_round_median_ms']:+.3f} ms | {v['overall_ms']:+.3f} ms | {met} |"
        )
    lines += [
        "",
        "## Sequential",
        "",
        f"One keep-alive client, small chat request, {seq['rounds']} rounds × {seq['block']} "
        "requests per gateway in rotating order, loopback upstream; five gateways of the same "
        "code, all running at once.",
        "",
        "| gateway | p50 ms | p90 ms | p99 ms | added p50 vs off: overall | per round: range "
        "(median) | gateway CPU ms/req | Redis CPU ms/req |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [(n, g, seq["added_p50_vs_off"].get(n)) for n, g in seq["gateways"].items()]
    rows.append(("limits+redis vs off+redis", None, seq["added_p50_vs_off_redis"]["limits+redis"]))
    for n, g, a in rows:
        cells = (
            "| | |" if g is None else f"{g['p50_ms']:.3f} | {g['p90_ms']:.3f} | {g['p99_ms']:.3f} |"
        )
        cpu = (
            "| |"
            if g is None
            else f"{g['gateway_cpu_ms_per_req']:.3f} | {g['redis_cpu_ms_per_req']:.3f} |"
        )
        if a is None:
            lines.append(f"| {n} | {cells} - | - | {cpu}")
        else:
            lines.append(
                f"| {n} | {cells} {a['overall_ms']:+.3f} ms | "
                f"{_span(a['per_round_ms'])} ({a['per_round_median_ms']:+.3f}) | {cpu}"
            )
    g = seq["gateways"]
    redis_gw = (
        g["limits+redis"]["gateway_cpu_ms_per_req"] - g["off+redis"]["gateway_cpu_ms_per_req"]
    )
    local_gw = g["limits"]["gateway_cpu_ms_per_req"] - g["off"]["gateway_cpu_ms_per_req"]
    lines += [
        "",
        f"CPU per request says what the wall-clock differences are made of: limits counted in "
        f"Redis add {redis_gw:+.3f} ms of the gateway's CPU per request against `off+redis` and "
        f"{g['limits+redis']['redis_cpu_ms_per_req']:.3f} ms of Redis's (limits counted in the "
        f"gateway: {local_gw:+.3f} ms against `off`). The rest of the added latency is spent "
        "waiting: for Redis's reply and, on a machine this loaded, for a core to run Redis "
        "and then the gateway again, twice per Redis call.",
    ]
    lines += [
        "",
        "`off`: `auth: {mode: none}`; `key`: a key without limits (lookup only); `limits`: a key "
        "with rpm, tpm and a budget far from reached (lookup, admission, settling), counted in "
        "the gateway (`LocalLimits`); `off+redis`: auth off, `state: {url: redis://…}` (routing "
        "state shared through Redis); `limits+redis`: the `limits` key with `state.url` set, "
        "counted in Redis (`SharedLimits`: one Lua call to admit, one to settle after the "
        "response). Both Redis gateways use one `redis-server` on loopback (separate databases).",
        "",
        "## Throughput at concurrency 32",
        "",
        f"Closed loop, wrk (`bench/wrk/chat.lua`, non-streaming, one thread per wrk), "
        f"{tput['seconds']} s per run after {tput['warmup_s']} s of warm-up, {tput['reps']} "
        "runs per setup in rotating order; the median run is shown. Two gateways: the same "
        "config (one Redis database, one record file), the same key, 16 connections each "
        "from two wrk processes at once.",
        "",
        "| setup | gateways | req/s (median) | req/s per run | p50 ms | p99 ms | errors | "
        "gateway CPU ms/req | Redis CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, s in tput["setups"].items():
        p50 = " / ".join(f"{g['p50_ms']:.2f}" for g in s["per_gateway"])
        p99 = " / ".join(f"{g['p99_ms']:.2f}" for g in s["per_gateway"])
        runs = ", ".join(f"{x:.0f}" for x in s["rps_runs"])
        redis_cpu = s["redis_cpu_ms_per_req"]
        lines.append(
            f"| {n} | {s['gateways']} | {s['rps_median']:.0f} | {runs} | {p50} | {p99} | "
            f"{s['errors']} | {s['gateway_cpu_ms_per_req']:.3f} | "
            f"{'-' if redis_cpu is None else f'{redis_cpu:.3f}'} |"
        )
    lines += [
        "",
        "With two gateways, p50 and p99 are each gateway's own (wrk reports percentiles per "
        "process); gateway CPU is both processes' together. All of it — gateways, upstream, "
        f"Redis, wrk — shares the machine's {res['cores']} cores, so a second replica adds no "
        "CPU (though two processes get a larger share of a loaded machine than one): the "
        "two-replica figure shows that sharing the counters works under load, not how turnout "
        "scales on more cores.",
        "",
        "## In-process",
        "",
        "Each call timed alone, median (p99) in µs; `settle` runs after the response is sent. "
        "`SharedLimits`'s settle waits up to 5 ms for another command to share its write to "
        "Redis (the next admission, in a gateway); timed alone here, nothing comes, so its "
        "column is mostly that wait, and the CPU column includes waking up cold after it "
        "(about twice the CPU of back-to-back calls). CPU: this process's CPU time per request "
        "(admit and settle), the Redis server's not included.",
        "",
        "| counters | authenticate + admit | settle | CPU µs/request |",
        "|---|---|---|---|",
    ]
    names = {
        "key": "none (a key without limits)",
        "limits": "`LocalLimits`",
        "limits+redis": "`SharedLimits` (Redis on loopback)",
        "redis ping": "for scale: one Redis `PING`, same client (in the admit column)",
    }
    for n, m in res["in_process_us"].items():
        settle = (
            f"{m['settle_p50_us']:.1f} ({m['settle_p99_us']:.1f})" if "settle_p50_us" in m else "-"
        )
        lines.append(
            f"| {names.get(n, n)} | {m['admit_p50_us']:.1f} ({m['admit_p99_us']:.1f}) | {settle} "
            f"| {m['cpu_us_per_request']:.1f} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
