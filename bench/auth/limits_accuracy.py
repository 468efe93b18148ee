"""Key limits across replicas: over-admission under a burst, and what one admission costs.

Accuracy: N replica processes (2 and 4), each a `SharedLimits` with its own connection to one
`redis-server`, fire their share of a burst for one key at the same instant; every admission
over the key's limit is counted. The same burst against N `LocalLimits` (each replica alone)
shows what sharing prevents. Cost: sequential `admit` and `settle` calls in one process,
in-process against Redis on loopback, timed one by one (p50, p99 in µs).

    flock /tmp/turnout-bench.lock python bench/auth/limits_accuracy.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "src"))

from prometheus_client import CollectorRegistry  # noqa: E402

from turnout.auth.limits import KeyLimits, LocalLimits  # noqa: E402
from turnout.auth.shared_limits import SharedLimits  # noqa: E402

# One replica: waits at a barrier (a Redis counter) until every replica is ready, fires its
# admissions at once, prints how many were admitted.
CHILD = r"""
import asyncio, json, sys, time
import redis
from turnout.auth.limits import KeyLimits, LocalLimits
from turnout.auth.shared_limits import SharedLimits

url, mode, key_id, rpm, tpm, count, predicted, replicas = sys.argv[1:9]
limits = KeyLimits(key_id, int(rpm) if rpm != "-" else None, int(tpm) if tpm != "-" else None,
                   None, None)

async def main():
    lim = LocalLimits() if mode == "alone" else SharedLimits(url)
    if mode == "shared":
        await lim.start()
    barrier = redis.Redis.from_url(url)
    barrier.incr("barrier:" + key_id)
    while int(barrier.get("barrier:" + key_id)) < int(replicas):
        time.sleep(0.0005)
    verdicts = await asyncio.gather(*(lim.admit(limits, int(predicted)) for _ in range(int(count))))
    if mode == "shared":
        await lim.close()
    print(json.dumps({"admitted": sum(v.ok for v in verdicts)}))

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit("redis-server did not start")


def burst(url: str, mode: str, replicas: int, key_id: str, rpm: int | None, tpm: int | None,
          total: int, predicted: int) -> int:  # fmt: skip
    """Admissions of one burst of `total` requests spread over `replicas` processes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = [url, mode, key_id, str(rpm) if rpm is not None else "-",
            str(tpm) if tpm is not None else "-"]  # fmt: skip
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                *args,
                str(total // replicas),
                str(predicted),
                str(replicas),
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(replicas)
    ]
    admitted = 0
    for p in procs:
        out, _ = p.communicate(timeout=60)
        if p.returncode != 0:
            raise SystemExit(f"a replica failed (exit {p.returncode})")
        admitted += json.loads(out)["admitted"]
    return admitted


def accuracy(url: str, rounds: int) -> list[dict[str, Any]]:
    cases = [  # (what is limited, rpm, tpm, requests in the burst, predicted tokens each)
        ("rpm 20, 40 requests", 20, None, 40, 0),
        ("rpm 100, 400 requests", 100, None, 400, 0),
        ("tpm 10000, 200 × 100 tokens", None, 10_000, 200, 100),
    ]
    rows = []
    for replicas in (2, 4):
        for name, rpm, tpm, total, predicted in cases:
            limit = rpm if rpm is not None else (tpm or 0) // predicted
            for mode in ("shared", "alone"):
                over = []
                for r in range(rounds):
                    key = f"bench-{replicas}-{name.split(',')[0].replace(' ', '')}-{mode}-{r}"
                    admitted = burst(url, mode, replicas, key, rpm, tpm, total, predicted)
                    over.append(admitted - limit)
                rows.append({"replicas": replicas, "case": name, "mode": mode, "limit": limit,
                             "rounds": rounds, "over_max": max(over), "over_total": sum(over),
                             "over_min": min(over)})  # fmt: skip
                print(
                    f"  {replicas} replicas  {name:30} {mode:6}  over the limit: "
                    f"max {max(over)}, min {min(over)} in {rounds} rounds",
                    flush=True,
                )
    return rows


def timed(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered), 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1], 1),
        "n": len(ordered),
    }


async def cost(url: str, n: int) -> list[dict[str, Any]]:
    limits = KeyLimits("cost", 10**9, 10**12, 10**9, 86400.0)
    rows = []
    local = LocalLimits()
    shared = SharedLimits(url, CollectorRegistry())
    await shared.start()
    try:
        for name, lim, count in [("local", local, n), ("redis", shared, max(1000, n // 4))]:
            admit: list[float] = []
            settle: list[float] = []
            for _ in range(count):
                t0 = time.perf_counter()
                await lim.admit(limits, 200)
                t1 = time.perf_counter()
                await lim.settle(limits, 200, 150, 0.0001)
                t2 = time.perf_counter()
                admit.append((t1 - t0) * 1e6)
                settle.append((t2 - t1) * 1e6)
            rows.append({"limits": name, "call": "admit", **timed(admit)})
            rows.append({"limits": name, "call": "settle", **timed(settle)})
            print(f"  {name:6} admit p50 {rows[-2]['p50_us']} µs, settle p50 "
                  f"{rows[-1]['p50_us']} µs", flush=True)  # fmt: skip
        ping: list[float] = []
        for _ in range(max(1000, n // 4)):  # the floor: one round trip to Redis, no script
            t0 = time.perf_counter()
            await shared._redis.call("PING")  # type: ignore[union-attr]
            ping.append((time.perf_counter() - t0) * 1e6)
        rows.append({"limits": "redis", "call": "PING (the floor)", **timed(ping)})
    finally:
        await shared.close()
    return rows


def render(command: str, result: dict[str, Any]) -> str:
    lines = [
        f"`{command}`",
        "",
        "# Key limits across replicas: accuracy and cost",
        "",
        f"{result['machine']}. Redis {result['redis']} on loopback.",
        "",
        "## Over-admission under a burst",
        "",
        "Each round: the replicas (separate processes, one Redis connection each) fire their",
        "share of the burst for one fresh key at the same instant. `shared`: `SharedLimits` on",
        "one Redis; `alone`: `LocalLimits`, each replica enforcing by itself. Target: 0 over.",
        "",
        "| replicas | burst | limit | mode | rounds | over the limit, max | min |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["accuracy"]:
        lines.append(f"| {r['replicas']} | {r['case']} | {r['limit']} | {r['mode']} | "
                     f"{r['rounds']} | {r['over_max']} | {r['over_min']} |")  # fmt: skip
    lines += [
        "",
        "## Cost of one call (sequential, one process)",
        "",
        "A key with every limit set (rpm, tpm, budget); settle corrects the tokens and adds",
        "a cost. `redis`: one Lua call per admit and per settle, Redis on loopback; a settle",
        "waits up to 5 ms for another command to share its write (in a gateway, the next",
        "admission), and called alone like this it waits all of it.",
        "",
        "| limits | call | p50 µs | p99 µs | calls |",
        "|---|---|---|---|---|",
    ]
    for r in result["cost"]:
        lines.append(f"| {r['limits']} | {r['call']} | {r['p50_us']} | {r['p99_us']} | {r['n']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="bursts per case and mode")
    parser.add_argument("--calls", type=int, default=20000, help="timed local calls")
    options = parser.parse_args()
    command = "flock /tmp/turnout-bench.lock python bench/auth/limits_accuracy.py " + " ".join(
        sys.argv[1:]
    )
    with tempfile.TemporaryDirectory() as folder:
        proc, url = start_redis(Path(folder))
        try:
            version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                     text=True).stdout.split()[2].removeprefix("v=")  # fmt: skip
            print("accuracy", flush=True)
            rows = accuracy(url, options.rounds)
            print("cost", flush=True)
            costs = asyncio.run(cost(url, options.calls))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    result = {
        "command": command.strip(),
        "machine": f"{platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores shared with other work",
        "redis": version,
        "accuracy": rows,
        "cost": costs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "auth_limits.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "auth_limits.md").write_text(render(command.strip(), result))
    print(render(command.strip(), result))


if __name__ == "__main__":
    main()
