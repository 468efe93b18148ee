"""Closed loop shows the bare per-request cost (c=1) and throughput at saturation; every run
is wrapped in CPU accounting and waits for a quiet machine, so noise from other work on a
shared box is recorded rather than hidden."""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway_overhead.common import fmt, log
from gateway_overhead.procs import (
    Proc,
    all_process_cpu,
    children_cpu_seconds,
    cpu_seconds,
    other_cpu_seconds,
    process_tree,
    rss_bytes,
    system_busy_seconds,
)
from gateway_overhead.targets import Target
from gateway_overhead.wrk import run_wrk


@dataclass
class Bench:
    args: argparse.Namespace
    upstream: Proc
    targets: dict[str, Target]
    sink: Proc | None = None  # the OTLP sink turnout exports spans to
    sink_url: str | None = None

    def sink_stats(self) -> dict[str, Any] | None:
        """How many span exports (and bytes) the sink has received so far."""
        if self.sink_url is None:
            return None
        try:
            with urllib.request.urlopen(f"{self.sink_url}/stats", timeout=5) as resp:
                return dict(json.loads(resp.read()))
        except (OSError, ValueError) as exc:
            return {"error": str(exc)}

    def servers(self) -> list[Proc]:
        procs = [self.upstream] + ([self.sink] if self.sink is not None else [])
        procs.extend(t.proc for t in self.targets.values() if t.proc is not None)
        return procs

    def wait_quiet(self) -> float:
        """Wait (up to --quiet-timeout) until processes outside the benchmark have used
        less than --quiet-pct of the machine's CPU for 1.5 s; return the seconds waited."""
        a = self.args
        start = time.monotonic()
        cores = os.cpu_count() or 1
        warned = False
        while True:
            before = all_process_cpu()
            time.sleep(1.5)
            other = other_cpu_seconds(before, set(process_tree(os.getpid())))
            pct = other * 100 / (1.5 * cores)
            waited = time.monotonic() - start
            if pct < a.quiet_pct or waited >= a.quiet_timeout:
                if pct >= a.quiet_pct:
                    log(f"  machine still busy ({pct:.0f}% CPU in other processes); going on")
                return round(waited - 1.5, 1)
            if not warned:
                log(f"  waiting for a quiet machine ({pct:.0f}% CPU in other processes)")
                warned = True

    def wait_idle(self, limit: float = 60.0) -> float:
        """Wait until our servers have drained: a client that went away (the warm-up's
        wrk, or the previous cell's) may have left requests a gateway still works on."""
        start = time.monotonic()
        servers = self.servers()
        while time.monotonic() - start < limit:
            before = sum(cpu_seconds(p.pid) for p in servers)
            time.sleep(0.3)
            if sum(cpu_seconds(p.pid) for p in servers) - before <= 0.02:
                break
        return time.monotonic() - start

    def measure(
        self,
        t: Target,
        mode: str,
        connections: int,
        seconds: int,
        rate: float = 0.0,
        timeout_s: int = 10,
    ) -> dict[str, Any]:
        """One measured wrk run with CPU accounting around it."""
        self.wait_idle()
        servers = self.servers()
        cpu0 = {p.name: cpu_seconds(p.pid) for p in servers}
        all0 = all_process_cpu()
        kids0, busy0, wall0 = children_cpu_seconds(), system_busy_seconds(), time.monotonic()
        res = run_wrk(t, mode, connections, seconds, rate, timeout_s)
        wall = time.monotonic() - wall0
        kids, busy = children_cpu_seconds() - kids0, system_busy_seconds() - busy0
        other = other_cpu_seconds(all0, set(process_tree(os.getpid())))
        cpu = {p.name: cpu_seconds(p.pid) - cpu0[p.name] for p in servers}
        n = max(res.requests, 1)
        done = res.requests > 0
        gw_cpu = cpu.get(t.proc.name) if t.proc is not None else None
        if not done:
            gw_cpu = None
        attributed = sum(cpu.values()) + kids
        dur_s = res.raw["duration_us"] / 1e6
        row: dict[str, Any] = {
            "target": t.name,
            "mode": mode,
            "connections": connections,
            "rate": rate or None,
            "duration_s": round(dur_s, 3),
            "requests": res.requests,
            "rps": round(res.requests / dur_s, 1) if dur_s > 0 else 0.0,
            # None when no response completed inside the window
            "latency_ms": {
                k: round(res.lat_ms(k), 3) if done else None
                for k in ("p50", "p75", "p90", "p99", "p999", "max", "mean")
            },
            "wrk_timeout_s": timeout_s,
            "errors": res.errors,
            "error_total": res.error_total,
            "gateway_cpu_ms_per_req": None if gw_cpu is None else round(gw_cpu * 1000 / n, 3),
            "gateway_cpu_util": None if gw_cpu is None else round(gw_cpu / wall, 3),
            "upstream_cpu_ms_per_req": round(cpu[self.upstream.name] * 1000 / n, 3),
            "otlp_sink_cpu_ms_per_req": round(cpu[self.sink.name] * 1000 / n, 3)
            if self.sink is not None
            else None,
            "wrk_cpu_ms_per_req": round(kids * 1000 / n, 3),
            # CPU of processes outside this benchmark (other work on the box), and machine
            # busy time charged to none of ours (that plus kernel time such as loopback
            # softirqs not charged to a task), both in % of all cores
            "other_procs_cpu_pct": round(other * 100 / (wall * (os.cpu_count() or 1)), 1),
            "unattributed_cpu_pct": round(
                max(busy - attributed, 0.0) * 100 / (wall * (os.cpu_count() or 1)), 1
            ),
            "open_loop": res.raw.get("open_loop") if rate else None,
            "wrk_argv": [a if not a.startswith("/") else Path(a).name for a in res.argv],
        }
        if t.proc is not None:
            row["gateway_rss_mib"] = round(rss_bytes(t.proc.pid) / 2**20, 1)
        return row

    def warm(
        self,
        t: Target,
        mode: str,
        connections: int,
        seconds: int,
        rate: float = 0.0,
        timeout_s: int = 10,
    ) -> float:
        """Wait for drained servers and a quiet machine, then warm up; returns the seconds
        waited for quiet."""
        self.wait_idle()
        waited = self.wait_quiet()
        if seconds > 0:
            run_wrk(t, mode, connections, seconds, rate, timeout_s)
        return waited


def closed_loop(b: Bench, order: list[str], rows: list[dict[str, Any]]) -> None:
    """Fills `rows` as it goes, so that an interrupted run still reports what it did."""
    a = b.args
    last_rps: dict[tuple[str, str], float] = {}
    for mode in a.modes:
        for c in sorted(a.concurrency):
            for name in order:
                t = b.targets[name]
                # A saturated gateway answers in about c / throughput. Where that is long
                # (a slow gateway at high c), run longer so the window holds several such
                # round trips, and let wrk wait longer before it calls a response a timeout.
                prev = last_rps.get((name, mode))
                expect = c / prev if prev else 0.0
                secs = min(max(a.duration, math.ceil(3 * expect)), a.max_cell_seconds)
                timeout_s = min(max(10, math.ceil(4 * expect)), 120)
                log(f"closed loop {mode} c={c} {name}: warm-up {a.warmup}s, run {secs}s")
                best: dict[str, Any] | None = None
                for attempt in range(1 + a.noisy_retries):
                    waited = b.warm(t, mode, c, a.warmup, timeout_s=timeout_s)
                    cand = b.measure(t, mode, c, secs, timeout_s=timeout_s)
                    cand["waited_for_quiet_s"] = waited
                    cand["attempt"] = attempt + 1
                    if best is None or cand["other_procs_cpu_pct"] < best["other_procs_cpu_pct"]:
                        best = cand
                    if cand["other_procs_cpu_pct"] <= a.noisy_pct or attempt == a.noisy_retries:
                        break
                    log(
                        f"  noisy: other processes used {cand['other_procs_cpu_pct']:.0f}% CPU "
                        f"({cand['rps']:.0f} req/s); measuring again"
                    )
                assert best is not None
                row = best
                rows.append(row)
                if row["rps"] > 0:
                    last_rps[(name, mode)] = row["rps"]
                lat = row["latency_ms"]
                log(
                    f"  {row['rps']:.0f} req/s p50 {fmt(lat['p50'])} ms p99 {fmt(lat['p99'])} "
                    f"ms errors {row['error_total']} gw cpu "
                    f"{fmt(row['gateway_cpu_ms_per_req'], 3)} ms/req"
                )
    # added latency relative to direct, same mode and concurrency
    direct = {(r["mode"], r["connections"]): r for r in rows if r["target"] == "direct"}
    for r in rows:
        d = direct.get((r["mode"], r["connections"]))
        if r["target"] != "direct" and d is not None and r["requests"] and d["requests"]:
            r["added_ms"] = {
                k: round(r["latency_ms"][k] - d["latency_ms"][k], 3) for k in ("p50", "p90", "p99")
            }
