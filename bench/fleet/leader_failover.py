"""Leader failover: from `kill -9` of the fleet's leader to the first decision of its successor.

A real `redis-server` and `--contenders` processes, each running turnout's `Elected` leadership
(this checkout's `src/`) at `--ttl` seconds (default: `state.leader_ttl_s`'s default). A leader
publishes one fenced decision the moment it gains the lease and prints when. Each trial waits a
random part of a renewal period (so the kill lands anywhere in it), kills the leader with
SIGKILL, and times until another contender's first decision (both stamped with the wall clock of
this one machine); the killed contender is started again, so every trial has the same number.

    flock /tmp/turnout-bench.lock python bench/fleet/leader_failover.py --trials 25
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"


# -- one contender (a child process) ------------------------------------------------------------


async def contend(url: str, name: str, ttl: float) -> None:
    from turnout.fleet.leader import Elected

    gained = asyncio.Event()

    class Contender(Elected):
        def _gained(self) -> None:
            super()._gained()
            gained.set()

    me = Contender(url, ttl, replica=name)
    await me.start()
    while True:
        await gained.wait()
        gained.clear()
        version, _ = await me.read("bench")
        if await me.publish("bench", name, version + 1):
            print(json.dumps({"name": name, "decided": time.time(), "epoch": me.epoch}), flush=True)


# -- the bench ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Contenders:
    def __init__(self, url: str, ttl: float) -> None:
        self.url, self.ttl = url, ttl
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.decisions: queue.Queue[dict[str, Any]] = queue.Queue()

    def spawn(self, name: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        cmd = [
            sys.executable,
            __file__,
            "--contend",
            self.url,
            "--name",
            name,
            "--ttl",
            str(self.ttl),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        self.procs[name] = proc
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.decisions.put(json.loads(line))

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait()


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def run(trials: int, contenders: int, ttl: float, seed: int) -> dict[str, Any]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    rng = random.Random(seed)
    port = free_port()
    folder = tempfile.mkdtemp(prefix="failover-")
    redis = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.3)
    fleet = Contenders(f"redis://127.0.0.1:{port}/0", ttl)
    out: list[dict[str, Any]] = []
    try:
        for k in range(contenders):
            fleet.spawn(f"c{k}")
        leader = fleet.decisions.get(timeout=60)
        for trial in range(trials):
            time.sleep(ttl / 4 * rng.random() + 0.2)  # anywhere in a renewal period
            killed_at = time.time()
            fleet.kill(leader["name"])
            successor = fleet.decisions.get(timeout=10 * ttl)
            took = successor["decided"] - killed_at
            out.append({"trial": trial, "killed": leader["name"], "successor": successor["name"],
                        "epoch": successor["epoch"], "failover_s": round(took, 4)})  # fmt: skip
            print(f"trial {trial + 1:2d}: {leader['name']} killed, {successor['name']} decided "
                  f"after {took:.3f} s (epoch {successor['epoch']})", flush=True)  # fmt: skip
            fleet.spawn(leader["name"])
            leader = successor
    finally:
        fleet.stop()
        redis.terminate()
        redis.wait()
    times = [t["failover_s"] for t in out]
    return {
        "ttl_s": ttl,
        "contenders": contenders,
        "trials": out,
        "p50_s": round(statistics.median(times), 3),
        "p99_s": round(percentile(times, 99), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "mean_s": round(statistics.fmean(times), 3),
    }


def report(result: dict[str, Any], command: str) -> str:
    ttl = result["ttl_s"]
    lines = [
        f"Command: `{command}`",
        "",
        "# Leader failover: kill -9 of the leader → the successor's first decision",
        "",
        f"{result['contenders']} contender processes (turnout's `Elected` leadership) on one "
        f"real redis-server, lease TTL {ttl:g} s (renewed every {ttl / 4:g} s; a contender waits "
        "for the holder's lease to run out, read with PTTL, and polls at least every "
        f"{min(0.5, ttl / 4):g} s). Each trial kills the leader at a random point of its renewal "
        "period and times until another contender has taken the lease and published one fenced "
        f"decision. {len(result['trials'])} trials.",
        "",
        "| p50 | p99 | min | max | mean |",
        "|---:|---:|---:|---:|---:|",
        f"| {result['p50_s']} s | {result['p99_s']} s | {result['min_s']} s | "
        f"{result['max_s']} s | {result['mean_s']} s |",
        "",
        f"Bound: the lease was last renewed at most {ttl / 4:g} s before the kill, so it runs "
        f"out {0.75 * ttl:g}–{ttl:g} s after it; a successor decides a few milliseconds later "
        "(Redis round trips on loopback). Failover is the TTL's to choose: `state.leader_ttl_s` "
        "trades it against how long a leader may be cut off from Redis (its socket timeout is "
        "TTL/10) before it stops deciding.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=25)
    parser.add_argument("--contenders", type=int, default=3)
    parser.add_argument("--ttl", type=float, default=None, help="default: state.leader_ttl_s's")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--contend", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contend:
        asyncio.run(contend(args.contend, args.name, args.ttl))
        return
    sys.path.insert(0, str(REPO / "src"))
    from turnout.config.schema import StateConfig

    ttl = args.ttl or StateConfig().leader_ttl_s
    result = run(args.trials, args.contenders, ttl, args.seed)
    command = "python bench/fleet/leader_failover.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fleet_failover.json").write_text(
        json.dumps({"command": command.strip(), **result}, indent=2) + "\n"
    )
    text = report(result, command.strip())
    (RESULTS / "fleet_failover.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
