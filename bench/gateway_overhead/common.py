"""What every part of the benchmark must agree on: where things live, the targets and modes,
and how a line of progress and a number are printed."""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent  # bench/ (this file is in bench/gateway_overhead/)
REPO = BENCH.parent
WORK = BENCH / ".work" / "overhead"  # other benchmarks use .work/ too
PORTKEY_DIR = BENCH / ".portkey"  # setup.sh installs the npm package here
LOGS = WORK / "logs"
LUA = BENCH / "wrk" / "chat.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
EXPECTED_CONTENT = "Hello from the bench upstream."
TARGETS = ("direct", "turnout", "portkey", "litellm")
PEERS = ("portkey", "litellm")
MODES = ("nonstream", "stream")


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", flush=True)


def fmt(x: float | None, nd: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return f"{x:.{nd}f}"
