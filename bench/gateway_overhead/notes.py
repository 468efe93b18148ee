"""A result has to say how it was made: the command that reproduces it and the conditions
that make the comparison fair."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from gateway_overhead.common import REPO


def command_line() -> str:
    """The command as run: under flock when the parent is flock, with PYTHONPATH=src when the
    gateway was pointed at this checkout's sources."""
    argv = [
        sys.executable
        if not sys.executable.startswith(str(REPO))
        else os.path.relpath(sys.executable, REPO)
    ]
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO)
    command = shlex.join([*argv, script, *sys.argv[1:]])
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    except OSError:
        parent = []
    if parent and Path(parent[0].decode()).name == "flock" and len(parent) > 2:
        command = f"flock {shlex.quote(parent[1].decode())} {command}"
    if Path(os.environ.get("PYTHONPATH", "/nonexistent")).resolve() == (REPO / "src").resolve():
        command = f"PYTHONPATH=src {command}"
    return command


def soak_notes(result: dict[str, Any]) -> list[str]:
    return [
        "Load: wrk open loop (bench/wrk/chat.lua, BENCH_MODE=mixed: requests alternate "
        "between streaming and not), one thread, ≥ 16 connections.",
        "turnout gets --soak-rate; LiteLLM gets min(--soak-rate, half its closed-loop "
        "c=32 non-streaming throughput) so that it is loaded but not overloaded — a "
        "gateway pushed past capacity grows queues, which is not a leak.",
        "Late sends = requests that were due while every connection of that gateway's "
        "wrk was busy (see overhead.md): many late sends mean the gateway could not keep "
        "up with its rate; in-flight requests stay bounded by the connection count.",
        "RSS = resident set of the gateway process plus any child processes "
        "(/proc/PID/statm); turnout's SQLite record grows on disk, not in memory.",
    ]


def fairness_notes(args: argparse.Namespace) -> list[str]:
    return [
        "Upstream: bench/upstream.py, one process (raw asyncio protocol + httptools, "
        "uvloop); answers at once; streams 9 SSE events (role, 5 content pieces, finish, "
        "usage, [DONE]), one write per event with an event-loop turn between. Its CPU per "
        "request is shown so its share of the 2 cores is visible.",
        "turnout: `turnout serve --config bench/.work/overhead/turnout.yaml` (uvicorn, "
        "uvloop, httptools, 1 process, access log off) with every default on: it writes a "
        "record of every request to SQLite with full request and response bodies "
        "(`record_bodies: full`, the default), keeps its Prometheus metrics, and exports "
        "OpenTelemetry spans over OTLP/HTTP (`telemetry.otlp_endpoint`) to a tiny sink on "
        "loopback (bench/otlp_sink.py: answers POST /v1/traces with 200 and counts the "
        "exports; its CPU is in overhead.json). Neither peer records or traces here.",
        "Portkey: its open-source gateway from npm (`@portkey-ai/gateway`, Node, one process), "
        "`node …/build/start-server.js --port=N --headless`, offline. Clients send "
        "`x-portkey-provider: openai` and `x-portkey-custom-host: "
        "http://127.0.0.1:UPSTREAM/v1` (only to this target), and a dummy upstream key as "
        "the bearer token, which it forwards. setup.sh pins `@hono/node-server` 1.13.8 "
        "under it: with the 1.19 line npm resolves today, every streaming request fails "
        "with a 500 (`TypeError: immutable` — it appends headers to the upstream fetch "
        "response's read-only headers). Portkey's stream transform waits 25 ms before it "
        "passes the first chunk on (a `setTimeout(25)` in its SSE splitter), so its "
        "streaming latency includes that wait by design.",
        "LiteLLM: `litellm --config bench/.work/overhead/litellm.yaml --num_workers 1` "
        "(its default uvicorn server; it selects uvloop itself; httptools is installed "
        "in its venv so uvicorn uses the same HTTP parser as turnout). Settings from "
        "LiteLLM's production checklist: `LITELLM_LOG=ERROR` (no access/info logs), "
        "`set_verbose: false`, `disable_spend_logs`, `disable_error_logs`, no database, "
        "no callbacks, `LITELLM_LOCAL_MODEL_COST_MAP=True` (offline). Clients send its "
        "master key as a bearer token (auth is on, as in any real deployment); turnout's "
        "bench config has no auth.",
        "wrk runs with one thread (`-t1`) so the load generator takes as little CPU as "
        "possible; its CPU per request is in overhead.json. Cells are interleaved "
        "(direct, turnout, Portkey, LiteLLM per mode and concurrency) so drift affects all "
        "alike.",
        "wrk counts only responses completed inside a window (requests still in flight "
        "when it ends are dropped) and calls a response slower than its --timeout an "
        "error. Cells whose expected latency (c ÷ the throughput measured at the previous "
        "concurrency) is long get a longer window (≥ 3× that, up to --max-cell-seconds) "
        "and timeout (≥ 4×). Between runs the driver waits until the servers' CPU goes "
        "idle, so requests a departed client left behind do not leak into the next cell.",
        "Closed-loop latency at c=32/256 is mostly queueing: with a fast upstream every "
        "gateway is CPU-saturated, so latency ≈ c ÷ throughput (Little's law). Per-request "
        "cost shows at c=1, in CPU ms/req, and in the open-loop table.",
        f"The machine may be shared with other work: before each cell the driver waits (up "
        f"to {args.quiet_timeout:g} s) until processes outside the benchmark use < "
        f"{args.quiet_pct:g}% of the CPU for 1.5 s; a closed-loop cell during which they "
        f"used > {args.noisy_pct:g}% is measured again (up to {args.noisy_retries} times, "
        "the quietest attempt is kept); the 'other CPU %' column flags "
        "cells where something else was busy (short-lived processes that ended inside a "
        "window are missed; overhead.json also has the machine-wide unattributed time).",
    ] + (
        [
            f"All bench processes (driver, upstream, both gateways, wrk) ran at nice "
            f"{args.nice} — the same priority for every target — because other work was "
            "running on this shared machine."
        ]
        if args.nice
        else []
    )
