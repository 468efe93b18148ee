"""What a simulation run measured: latency percentiles, goodput, utilisation, Little's law."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from turnout.sim.fleet import SimResult


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Slo:
    ttft_s: float = 2.0
    tpot_s: float = 0.1


def summarize(result: SimResult, slo: Slo = Slo()) -> dict[str, Any]:
    reqs = result.requests
    lat = [r.latency for r in reqs]
    ttft = [r.ttft for r in reqs]
    tpot = [r.tpot for r in reqs if r.output_tokens > 1]
    span = (max(r.end for r in reqs) - min(r.arrival for r in reqs)) if reqs else 0.0
    good = sum(1 for r in reqs if r.ttft <= slo.ttft_s and r.tpot <= slo.tpot_s)
    out: dict[str, Any] = {
        "requests": len(reqs),
        "shed": result.shed,
        "rejected": result.rejected,
        "goodput_rps": good / span if span > 0 else 0.0,
        "slo_attained": good / len(reqs) if reqs else 0.0,
        "prefix_hit_rate": sum(r.prefix_hit for r in reqs) / len(reqs) if reqs else 0.0,
        "utilisation": result.utilisation,
    }
    for name, xs in (("latency", lat), ("ttft", ttft), ("tpot", tpot)):
        for q in (0.5, 0.9, 0.99):
            out[f"{name}_p{round(q * 100)}_s"] = percentile(xs, q)
        out[f"{name}_mean_s"] = sum(xs) / len(xs) if xs else math.nan
    if result.predictor_errors:
        out["length_errors"] = result.predictor_errors
    return out


def littles_law(result: SimResult) -> tuple[float, float]:
    """(L measured as the time-average number in the fleet, λ·W from the requests' own times)."""
    reqs = result.all_requests
    t = result.duration_s
    arrival_rate = len(reqs) / t
    mean_sojourn = sum(r.latency for r in reqs) / len(reqs)
    return result.in_system_area / t, arrival_rate * mean_sojourn
