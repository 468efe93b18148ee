"""wrk generates all the load; its command line and its JSON summary (from wrk/chat.lua) are
read in this one place."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from gateway_overhead.common import LUA
from gateway_overhead.targets import Target


@dataclass
class WrkResult:
    raw: dict[str, Any]
    argv: list[str]
    seconds: float

    @property
    def requests(self) -> int:
        return int(self.raw["requests"])

    def lat_ms(self, key: str) -> float:
        return float(self.raw["latency_us"][key]) / 1000.0

    @property
    def errors(self) -> dict[str, int]:
        e = {k: int(v) for k, v in self.raw["errors"].items()}
        e["non200"] = int(self.raw.get("non200", 0))
        e["bad_body"] = int(self.raw.get("bad_body", 0))
        return e

    @property
    def error_total(self) -> int:
        e = self.errors
        # wrk's "status" errors (>= 400) are also non-200: count them once
        return e["connect"] + e["read"] + e["write"] + e["timeout"] + e["non200"] + e["bad_body"]


def run_wrk(
    t: Target,
    mode: str,
    connections: int,
    seconds: int,
    rate: float = 0.0,
    timeout_s: int = 10,
) -> WrkResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk not found: apt-get install -y wrk (or bash bench/setup.sh)")
    argv = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(LUA),
        t.url,
    ]
    env = dict(os.environ)
    env.update(
        BENCH_MODE=mode,
        BENCH_MODEL=t.model,
        BENCH_RATE=str(rate),
        BENCH_THREADS="1",
        BENCH_AUTH=t.auth or "",
        BENCH_HEADERS="\n".join(f"{k}: {v}" for k, v in t.headers.items()),
    )
    start = time.monotonic()
    cp = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + timeout_s + 60
    )
    took = time.monotonic() - start
    for line in cp.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return WrkResult(json.loads(line[len("BENCH_JSON ") :]), argv, took)
    raise RuntimeError(f"wrk gave no result (rc {cp.returncode}): {cp.stdout}\n{cp.stderr}")
