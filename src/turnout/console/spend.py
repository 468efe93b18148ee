"""Keys and spend: each key's spend over time against its budget, drawn from the record.

The record's spend is bucketed by the store (per key, per hour or day); within each budget
period the buckets add up, so the line climbs toward the budget and starts over when the period
does, as the guard counts it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from turnout.auth.keys import period_start
from turnout.console.html import Markup, e, join, when

# window: (seconds shown, bucket seconds)
WINDOWS = {"24h": (86400.0, 3600.0), "7d": (7 * 86400.0, 3600.0), "30d": (30 * 86400.0, 86400.0)}
W, H, PAD = 420, 110, 8


def by_key(rows: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """{key_id: [(bucket start, cost)]} from `RecordReader.key_spend`, oldest first."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        out[r["key_id"]].append((r["bucket"], r["cost_usd"] or 0.0))
    return out


def cumulative(
    buckets: list[tuple[float, float]], period_s: float | None
) -> list[tuple[float, float, float]]:
    """(bucket start, its cost, spend so far in its budget period)."""
    out = []
    period, total = None, 0.0
    for at, cost in buckets:
        p = period_start(at, period_s)
        if p != period:
            period, total = p, 0.0
        total += cost
        out.append((at, cost, total))
    return out


def chart(
    points: list[tuple[float, float, float]],
    budget: float | None,
    since: float,
    now: float,
    bucket_s: float,
) -> Markup:
    """Bars: spend per bucket; line: spend so far this period; dashed: the budget."""
    if not points:
        return Markup('<p class="empty">no spend recorded in this window</p>')
    top = max([budget or 0.0] + [p[2] for p in points]) * 1.1 or 1.0
    span = max(now - since, 1.0)
    since = (math.floor(now / bucket_s) + 1) * bucket_s - span  # the current bucket fits

    def x(t: float) -> float:
        return round(PAD + (t - since) / span * (W - 2 * PAD), 1)

    def y(v: float) -> float:
        return round(H - PAD - v / top * (H - 2 * PAD), 1)

    width = max(1.0, round(bucket_s / span * (W - 2 * PAD) - 1, 1))
    bars = join(
        Markup(
            f'<rect class="spent" x="{x(at)}" y="{y(cost)}" width="{width}" '
            f'height="{round(H - PAD - y(cost), 1)}"><title>{e(when(at))}: ${cost:.6f}'
            "</title></rect>"
        )
        for at, cost, _ in points
    )
    line = " ".join(f"{x(at + bucket_s)},{y(total)}" for at, _, total in points)
    limit = (
        Markup(
            f'<line class="budget" x1="{PAD}" x2="{W - PAD}" y1="{y(budget)}" y2="{y(budget)}"/>'
            f'<text class="scale" x="{PAD + 2}" y="{y(budget) - 3}">budget ${budget:g}</text>'
        )
        if budget is not None
        else ""
    )
    total = points[-1][2]
    return Markup(
        f'<svg class="spend" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="spend over time">{limit}{bars}'
        f'<polyline class="line" points="{line}"/>'
        f'<text class="scale" x="{W - PAD}" y="12" text-anchor="end">${total:.4f} this period'
        "</text></svg>"
    )


def refusals(rows: list[dict[str, Any]]) -> dict[str, list[tuple[str, int]]]:
    """{key_id: [(reason, requests)]}, most first, from `RecordReader.key_refusals`."""
    out: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for r in rows:
        out[r["key_id"]].append((r["code"], r["requests"]))
    return {k: sorted(v, key=lambda c: (-c[1], c[0])) for k, v in out.items()}
