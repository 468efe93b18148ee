"""A leak shows only over time, so the gateways run side by side under steady load while
their memory is sampled."""

from __future__ import annotations

import threading
import time
from typing import Any

from gateway_overhead.closed import Bench
from gateway_overhead.common import log
from gateway_overhead.openloop import rate_connections
from gateway_overhead.procs import cpu_seconds, rss_bytes
from gateway_overhead.targets import Target
from gateway_overhead.wrk import WrkResult, run_wrk


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) points, in MiB per minute."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx * 60.0


def soak(
    b: Bench, plans: list[tuple[Target, float]], seconds: int, interval: float
) -> list[dict[str, Any]]:
    """Soak every gateway in `plans` at once, each with its own wrk at its own rate, while
    a sampler reads each gateway's RSS every `interval` seconds."""
    b.wait_idle()
    b.wait_quiet()
    for t, rate in plans:
        log(f"soak {t.name}: {seconds}s at {rate:g} req/s (mixed stream/non-stream)")
    log(f"soak: 10 s warm-up, then {seconds} s, gateways side by side")
    n = len(plans)
    ready = threading.Barrier(n + 1)
    results: dict[str, WrkResult] = {}
    failures: list[BaseException] = []
    samples: dict[str, list[tuple[float, int]]] = {t.name: [] for t, _ in plans}
    cpu0: dict[str, float] = {}
    stop = threading.Event()

    def load(t: Target, rate: float) -> None:
        conns = max(16, rate_connections(rate))
        try:
            run_wrk(t, "mixed", conns, 10, rate)
        except BaseException as exc:
            failures.append(exc)
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        try:
            results[t.name] = run_wrk(t, "mixed", conns, seconds, rate)
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=load, args=plan, daemon=True) for plan in plans]
    for w in workers:
        w.start()
    ready.wait()
    t0 = time.monotonic()
    for t, _ in plans:
        assert t.proc is not None
        cpu0[t.name] = cpu_seconds(t.proc.pid)
    try:
        while any(w.is_alive() for w in workers):
            now = time.monotonic() - t0
            for t, _ in plans:
                assert t.proc is not None
                samples[t.name].append((now, rss_bytes(t.proc.pid)))
            stop.wait(interval)
    finally:
        for w in workers:
            w.join()
    if failures:
        raise RuntimeError(f"soak load failed: {failures[0]!r}")
    now = time.monotonic() - t0
    out = []
    for t, rate in plans:
        assert t.proc is not None
        samples[t.name].append((now, rss_bytes(t.proc.pid)))
        out.append(
            soak_summary(
                b,
                t,
                rate,
                seconds,
                interval,
                results[t.name],
                samples[t.name],
                cpu_seconds(t.proc.pid) - cpu0[t.name],
            )
        )
    return out


def soak_summary(
    b: Bench,
    t: Target,
    rate: float,
    seconds: int,
    interval: float,
    res: WrkResult,
    samples: list[tuple[float, int]],
    cpu: float,
) -> dict[str, Any]:
    mib = [(s, r / 2**20) for s, r in samples]
    slope = _slope
    half = mib[len(mib) // 2 :]
    first_half_max = max(v for _, v in mib[: max(len(mib) // 2, 1)])
    s_all, s_half = slope(mib), slope(half)
    end = mib[-1][1]
    flat = (
        s_half is not None
        and s_half <= b.args.soak_flat_mib_per_min
        and end <= first_half_max * 1.05
    )
    n = max(res.requests, 1)
    return {
        "target": t.name,
        "rate": rate,
        "seconds": seconds,
        "sample_interval_s": interval,
        "requests": res.requests,
        "errors": res.errors,
        "error_total": res.error_total,
        "latency_ms": {k: round(res.lat_ms(k), 3) for k in ("p50", "p90", "p99", "max")},
        "open_loop": res.raw.get("open_loop"),
        "cpu_ms_per_req": round(cpu * 1000 / n, 3),
        "rss_mib": {
            "start": round(mib[0][1], 1),
            "end": round(end, 1),
            "max": round(max(v for _, v in mib), 1),
            "min": round(min(v for _, v in mib), 1),
            "slope_mib_per_min": None if s_all is None else round(s_all, 3),
            "slope_second_half_mib_per_min": None if s_half is None else round(s_half, 3),
        },
        "flat": flat,
        "samples": [[round(s, 1), round(v, 2)] for s, v in mib],
    }
