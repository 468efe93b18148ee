"""`/ui/`: what the gateway is doing now, from the newest part of the record, updated live.

The window is the last `WINDOW_S` seconds or the newest `SAMPLE` requests, whichever holds
fewer: a fixed amount of reading per update, whatever the traffic and the record's size. Pages
open at once share one reading a second (`FRESH_S`).
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from typing import Any

from turnout.console.html import Markup

WINDOW_S = 60.0
SAMPLE = 1000
BUCKETS = 30
FRESH_S = 1.0


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(rows: list[dict[str, Any]], now: float | None = None) -> dict[str, Any]:
    """The overview's numbers from summary rows (newest first, as `RecordReader.requests`)."""
    now = time.time() if now is None else now
    since = now - WINDOW_S
    recent = [r for r in rows if r["started"] >= since]
    # A full sample that does not reach back the whole window covers less time than it.
    covered = WINDOW_S
    if len(rows) >= SAMPLE and recent and len(recent) == len(rows):
        covered = max(now - recent[-1]["started"], 1e-3)
    latency = [r["latency_ms"] for r in recent if r["latency_ms"] is not None]
    ttft = [r["ttft_ms"] for r in recent if r["ttft_ms"] is not None]
    by_model: dict[str, dict[str, float]] = defaultdict(_tally)
    by_deployment: dict[str, dict[str, float]] = defaultdict(_tally)
    for r in recent:
        _add(by_model[r["model"] or "-"], r)
        deps = r["deployments"] or []
        _add(by_deployment[deps[-1] if deps else "(none)"], r)
    series = [{"requests": 0, "latency": []} for _ in range(BUCKETS)]
    width = covered / BUCKETS
    for r in recent:
        i = min(BUCKETS - 1, max(0, int((r["started"] - (now - covered)) / width)))
        series[i]["requests"] += 1
        if r["latency_ms"] is not None:
            series[i]["latency"].append(r["latency_ms"])
    return {
        "at": now,
        "window_s": round(covered, 3),
        "requests": len(recent),
        "rps": round(len(recent) / covered, 3),
        "outcomes": dict(Counter(r["outcome"] for r in recent).most_common()),
        "latency_ms": {"p50": percentile(latency, 50), "p99": percentile(latency, 99)},
        "ttft_ms": {"p50": percentile(ttft, 50), "p99": percentile(ttft, 99)},
        "by_model": _rounded(by_model),
        "by_deployment": _rounded(by_deployment),
        "series": [
            {
                "rps": round(b["requests"] / width, 3),
                "p50_ms": percentile(b["latency"], 50),
            }
            for b in series
        ],
        "latest": [r["id"] for r in rows[:5]],
    }


def _tally() -> dict[str, float]:
    return {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}


def _add(t: dict[str, float], r: dict[str, Any]) -> None:
    t["requests"] += 1
    t["prompt_tokens"] += r["prompt_tokens"]
    t["completion_tokens"] += r["completion_tokens"]
    t["cost_usd"] += r["cost_usd"] or 0.0


def _rounded(groups: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {name: {**t, "cost_usd": round(t["cost_usd"], 8)} for name, t in sorted(groups.items())}


def render() -> Markup:
    """The frame the page's script fills from `/ui/api/overview` every few seconds."""
    tiles = "".join(
        f'<div class="tile"><span class="label">{label}</span><span class="value" id="{key}">…'
        "</span></div>"
        for key, label in (
            ("rps", "requests / s"),
            ("requests", "requests in window"),
            ("lat-p50", "latency p50 ms"),
            ("lat-p99", "latency p99 ms"),
            ("ttft-p50", "ttft p50 ms"),
            ("ttft-p99", "ttft p99 ms"),
        )
    )
    return Markup(
        '<div id="overview" data-src="/ui/api/overview">'
        f'<p class="muted">live: <span id="updated">waiting for the first update</span> '
        '<span id="window"></span></p>'
        f'<div class="tiles">{tiles}</div>'
        '<section><h2>Alarms</h2><div id="alarms"><p class="empty">…</p></div></section>'
        '<section class="charts"><div><h2>Requests / s</h2><svg id="chart-rps" '
        'class="chart" viewBox="0 0 300 80" role="img" aria-label="requests per second">'
        '</svg></div><div><h2>Latency p50 ms</h2><svg id="chart-lat" class="chart" '
        'viewBox="0 0 300 80" role="img" aria-label="latency p50"></svg></div></section>'
        '<section><h2>Outcomes</h2><div id="outcomes"></div></section>'
        '<section><h2>By model</h2><div id="by-model"></div></section>'
        '<section><h2>By deployment</h2><div id="by-deployment"></div></section>'
        '<section><h2>Latest requests</h2><ul id="latest"></ul></section>'
        "</div>"
    )
