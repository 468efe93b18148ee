"""Gateway overhead benchmark: turnout side by side with Portkey's gateway and LiteLLM's proxy.

Starts a fast loopback upstream (bench/upstream.py), turnout (every default on: the record
with full bodies, metrics, and spans exported to bench/otlp_sink.py), Portkey's open-source
gateway (Node) and LiteLLM's proxy, each as its own process on 127.0.0.1, then drives them
with wrk (bench/wrk/chat.lua):

1. closed loop, non-streaming and streaming, at each --concurrency (default 1, 32, 256):
   direct-to-upstream, turnout, Portkey and LiteLLM, interleaved, each after a warm-up;
   added latency = gateway percentile - direct percentile (same mode and concurrency);
2. open loop (fixed arrival rate): the highest rate each gateway sustains with
   p99 added latency < --slo-ms (default 10 ms), direct measured at the same rates;
3. optionally (--soak-seconds > 0, default 600) a memory soak per gateway: a fixed-rate
   mix of streaming and non-streaming requests while the gateway's RSS is sampled.

It reports CPU time per request of each gateway process from /proc/PID/stat
(utime + stime deltas over the measured window) and counts every non-200 response,
socket error and malformed body. Results: bench/results/overhead.{md,json} and
bench/results/soak.{md,json}. Every process it starts is stopped on exit, on error and
on SIGINT/SIGTERM (and gets SIGTERM from the kernel if this driver dies).

Needs: wrk (Debian package), bench/.venv-bench (upstream, OTLP sink), bench/.venv-litellm
and bench/.portkey (the peers), node, .venv/bin/turnout (the project venv). `bash bench/setup.sh`
makes all but the last. `--quick` is the short matrix: c=1 and 32, both modes, no open loop,
no soak.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_overhead.closed import closed_loop
from gateway_overhead.common import BENCH, MODES, PEERS, REPO, TARGETS, log
from gateway_overhead.notes import command_line, fairness_notes, soak_notes
from gateway_overhead.openloop import RateSearch
from gateway_overhead.procs import Processes
from gateway_overhead.report import write_overhead, write_soak
from gateway_overhead.setup import PORTKEY_SERVER, env_info, start_all
from gateway_overhead.soak import soak
from gateway_overhead.targets import Target


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="turnout vs Portkey vs LiteLLM gateway overhead benchmark",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--duration", type=int, default=10, help="seconds per closed-loop cell")
    ap.add_argument(
        "--max-cell-seconds",
        type=int,
        default=60,
        help="cap on the longer windows given to cells with a deep queue",
    )
    ap.add_argument("--warmup", type=int, default=2, help="warm-up seconds before each cell")
    ap.add_argument("--concurrency", default="1,32,256", help="closed-loop connection counts")
    ap.add_argument("--modes", default="nonstream,stream", help="nonstream,stream")
    ap.add_argument("--only", choices=TARGETS, help="one target (direct is always measured)")
    ap.add_argument("--skip-litellm", action="store_true")
    ap.add_argument("--skip-portkey", action="store_true")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="the short matrix: --concurrency 1,32, both modes, --skip-rate, --soak-seconds 0",
    )
    ap.add_argument("--skip-closed", action="store_true", help="skip the closed-loop matrix")
    ap.add_argument("--skip-rate", action="store_true", help="skip the open-loop rate search")
    ap.add_argument("--rate-modes", default="nonstream,stream")
    ap.add_argument("--slo-ms", type=float, default=10.0, help="p99 added latency bound")
    ap.add_argument("--rate-start", type=float, default=50.0)
    ap.add_argument("--rate-factor", type=float, default=1.5)
    ap.add_argument("--rate-floor", type=float, default=2.0)
    ap.add_argument("--rate-max", type=float, default=20000.0)
    ap.add_argument("--rate-refine", type=int, default=3, help="bisection steps")
    ap.add_argument("--rate-step-seconds", type=int, default=5)
    ap.add_argument("--soak-seconds", type=int, default=600, help="0 skips the soak")
    ap.add_argument(
        "--soak-rate",
        type=float,
        default=200.0,
        help="req/s for turnout; LiteLLM gets min(this, half its c=32 peak)",
    )
    ap.add_argument("--soak-interval", type=float, default=5.0, help="RSS sample period")
    ap.add_argument("--soak-flat-mib-per-min", type=float, default=0.2)
    ap.add_argument("--out", default=str(BENCH / "results"))
    ap.add_argument("--turnout-bin", default=str(REPO / ".venv" / "bin" / "turnout"))
    ap.add_argument("--litellm-venv", default=str(BENCH / ".venv-litellm"))
    ap.add_argument("--bench-python", default=str(BENCH / ".venv-bench" / "bin" / "python"))
    ap.add_argument("--ready-timeout", type=float, default=120.0)
    ap.add_argument(
        "--render",
        action="store_true",
        help="only rewrite the .md files from the .json files already in --out",
    )
    ap.add_argument(
        "--quiet-pct",
        type=float,
        default=10.0,
        help="before each cell, wait until other processes use less than this %% of all cores",
    )
    ap.add_argument(
        "--noisy-pct",
        type=float,
        default=15.0,
        help="a closed-loop cell during which other processes used more than this %% of "
        "all cores is measured again (up to --noisy-retries times; the quietest is kept)",
    )
    ap.add_argument("--noisy-retries", type=int, default=2)
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority for the driver and everything it starts (all alike); "
        "negative values (root) keep other work on a shared machine from skewing results",
    )
    ap.add_argument(
        "--quiet-timeout",
        type=float,
        default=120.0,
        help="longest wait for a quiet machine before each cell (then go on)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.concurrency, args.modes = "1,32", "nonstream,stream"
        args.skip_rate, args.soak_seconds = True, 0
    args.concurrency = [int(x) for x in str(args.concurrency).split(",") if x]
    args.modes = [m for m in str(args.modes).split(",") if m]
    args.rate_modes = [m for m in str(args.rate_modes).split(",") if m]
    for m in [*args.modes, *args.rate_modes]:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}")
    return args


def chosen_targets(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    names = list(TARGETS)
    notes: list[str] = []
    if args.only:
        names = ["direct"] if args.only == "direct" else ["direct", args.only]
    for peer in PEERS:
        if getattr(args, f"skip_{peer}") and peer in names:
            names.remove(peer)
    if "portkey" in names and not PORTKEY_SERVER.exists():
        if args.only == "portkey":
            raise SystemExit(f"Portkey not found at {PORTKEY_SERVER}; run bash bench/setup.sh")
        names.remove("portkey")
        notes.append("Portkey skipped: bench/.portkey is not installed (bash bench/setup.sh)")
    if "turnout" in names and not os.access(args.turnout_bin, os.X_OK):
        if args.only == "turnout":
            raise SystemExit(f"turnout not found at {args.turnout_bin}")
        names.remove("turnout")
        notes.append(f"turnout skipped: {args.turnout_bin} does not exist")
    litellm_bin = Path(args.litellm_venv) / "bin" / "litellm"
    if "litellm" in names and not os.access(litellm_bin, os.X_OK):
        if args.only == "litellm":
            raise SystemExit(f"LiteLLM not found at {litellm_bin}; run bash bench/setup.sh")
        names.remove("litellm")
        notes.append(f"LiteLLM skipped: {litellm_bin} does not exist")
    return names, notes


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.nice:
        # inherited by every server and wrk run: the whole bench gets the same priority
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    out = Path(args.out)
    if args.render:
        for name, writer in (("overhead", write_overhead), ("soak", write_soak)):
            path = out / f"{name}.json"
            if path.exists():
                writer(json.loads(path.read_text()), out)
        return 0
    names, skip_notes = chosen_targets(args)
    settings = {
        k: getattr(args, k)
        for k in (
            "duration",
            "warmup",
            "concurrency",
            "modes",
            "rate_modes",
            "slo_ms",
            "rate_start",
            "rate_factor",
            "rate_floor",
            "rate_max",
            "rate_refine",
            "rate_step_seconds",
            "soak_seconds",
            "soak_rate",
            "soak_interval",
            "soak_flat_mib_per_min",
            "quiet_pct",
            "quiet_timeout",
            "noisy_pct",
            "noisy_retries",
            "max_cell_seconds",
            "nice",
            "quick",
        )
    }
    result: dict[str, Any] = {
        "command": command_line(),
        "status": "running",
        "env": env_info(args),
        "settings": settings,
        "targets": names,
        "notes": skip_notes + fairness_notes(args),
    }
    soak_result: dict[str, Any] = {
        **result,
        "soak": [],
        "notes": soak_notes(result) + result["notes"],
    }
    procs = Processes()
    do_overhead = not (args.skip_closed and args.skip_rate)
    write: list[Callable[[], None]] = []
    if do_overhead:
        write.append(lambda: write_overhead(result, out))
    if args.soak_seconds > 0 and len(names) > 1:
        write.append(lambda: write_soak(soak_result, out))
    try:
        with signals_raise():
            b = start_all(args, procs, names)
            result["probes"] = {n: t.probe for n, t in b.targets.items()}
            if not args.skip_closed:
                result["closed_loop"] = []
                closed_loop(b, names, result["closed_loop"])
            if not args.skip_rate:
                result["rate_search"] = []
                for mode in args.rate_modes:
                    rs = RateSearch(b, mode)
                    for name in names:
                        if name == "direct":
                            continue
                        log(f"open-loop search {mode} {name}")
                        result["rate_search"].append(rs.search(b.targets[name]))
            result["otlp_sink"] = b.sink_stats()
            result["status"] = "complete"
            if do_overhead:
                write_overhead(result, out)
            if args.soak_seconds > 0 and len(names) > 1:
                plans: list[tuple[Target, float]] = []
                for name in names:
                    if name == "direct":
                        continue
                    t = b.targets[name]
                    rate = args.soak_rate
                    if name == "litellm":
                        peak = [
                            r["rps"]
                            for r in result.get("closed_loop", [])
                            if r["target"] == "litellm" and r["connections"] == 32
                        ]
                        if not peak:
                            probe = b.measure(t, "nonstream", 32, 5)
                            peak = [probe["rps"]]
                        rate = max(1.0, min(rate, math.floor(0.5 * max(peak))))
                    plans.append((t, rate))
                soak_result["soak"] = soak(b, plans, args.soak_seconds, args.soak_interval)
                soak_result["status"] = "complete"
                write_soak(soak_result, out)
            write.clear()
        return 0
    except (KeyboardInterrupt, Exception) as exc:
        msg = f"stopped early: {type(exc).__name__}: {exc}"
        log(msg)
        if result["status"] != "complete":
            result["status"] = msg
        if soak_result["status"] != "complete":
            soak_result["status"] = msg
        for w in write:
            with contextlib.suppress(Exception):
                w()
        if not isinstance(exc, KeyboardInterrupt):
            raise
        return 130
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
