"""Runs of the simulator across loads, strategies and seeds — what `turnout sim` and the
benchmark both report."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from turnout.sim.fleet import SimConfig, simulate
from turnout.sim.report import Slo, summarize
from turnout.sim.timing import Profile
from turnout.sim.workload import SimRequest, Workload, capacity_rps, generate

METRICS = (
    "latency_p50_s",
    "latency_p90_s",
    "latency_p99_s",
    "latency_mean_s",
    "ttft_p99_s",
    "tpot_p99_s",
    "goodput_rps",
    "slo_attained",
    "prefix_hit_rate",
)


@dataclass(frozen=True, slots=True)
class Variant:
    """One thing to compare: a strategy, optionally with affinity or another predictor."""

    strategy: str
    affinity: bool = False
    predictor: str = "family"
    learn_rates: bool = True

    @property
    def label(self) -> str:
        parts = [self.strategy]
        if self.affinity:
            parts.append("affinity")
        if self.predictor != "family" and self.strategy != "oracle":
            parts.append(f"pred={self.predictor}")
        if not self.learn_rates:
            parts.append("true-rates")
        return "+".join(parts)


@dataclass(slots=True)
class Sweep:
    profiles: Sequence[Profile]
    workload: Workload
    loads: Sequence[float]
    variants: Sequence[Variant]
    seeds: Sequence[int]
    requests: int
    cv: float = 1.0
    prefix_cache: int = 16
    slo: Slo = field(default_factory=Slo)
    trace: list[SimRequest] | None = None  # replaces the generator (loads then scale its speed)

    def capacity(self) -> float:
        return capacity_rps(self.workload, self.profiles)

    def points(self) -> list[tuple[float, int]]:
        return [(load, seed) for load in self.loads for seed in self.seeds]

    def workload_for(self, load: float, seed: int) -> list[SimRequest]:
        if self.trace is not None:
            t0 = self.trace[0].arrival
            span = self.trace[-1].arrival - t0
            natural = len(self.trace) / span if span > 0 else 1.0
            speed = load * self.capacity() / natural
            return [
                SimRequest(
                    r.id,
                    (r.arrival - t0) / speed,
                    r.prompt_tokens,
                    r.output_tokens,
                    r.features,
                    r.prefix_key,
                    r.prefix_tokens,
                )
                for r in self.trace
            ]
        return generate(self.workload, load * self.capacity(), self.requests, seed, self.cv)

    def run(self, on_point: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
        """One row per (load, seed, variant)."""
        rows = []
        for load, seed in self.points():
            reqs = self.workload_for(load, seed)
            for v in self.variants:
                config = SimConfig(
                    self.profiles,
                    strategy=v.strategy,
                    affinity=v.affinity,
                    predictor=v.predictor,
                    prefix_cache=self.prefix_cache,
                    seed=seed,
                    learn_rates=v.learn_rates,
                )
                result = simulate(config, reqs)
                row = summarize(result, self.slo)
                row.update(load=load, seed=seed, variant=v.label)
                rows.append(row)
                if on_point is not None:
                    on_point(
                        f"load {load:.0%} seed {seed} {v.label}: p99 {row['latency_p99_s']:.2f} s"
                    )
        return rows


def aggregate(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds of each metric, per (load, variant), with the seeds' min and max."""
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["load"], r["variant"]), []).append(r)
    out = []
    for (load, variant), rs in groups.items():
        agg: dict[str, Any] = {"load": load, "variant": variant, "seeds": len(rs)}
        for m in METRICS:
            xs = [r[m] for r in rs if not math.isnan(r[m])]
            agg[m] = sum(xs) / len(xs) if xs else math.nan
            agg[f"{m}_min"] = min(xs) if xs else math.nan
            agg[f"{m}_max"] = max(xs) if xs else math.nan
        agg["requests"] = sum(r["requests"] for r in rs)
        agg["shed"] = sum(r["shed"] for r in rs)
        agg["rejected"] = sum(r["rejected"] for r in rs)
        util = [u for r in rs for u in r["utilisation"].values()]
        agg["utilisation_mean"] = sum(util) / len(util) if util else math.nan
        out.append(agg)
    return out


def table(aggs: Sequence[dict[str, Any]]) -> str:
    """A Markdown table, one line per (load, variant)."""
    head = (
        "| load | strategy | p50 s | p90 s | p99 s | p99 TTFT s | p99 TPOT ms | goodput rps "
        "| shed | rejected |"
    )
    lines = [head, "|" + "---|" * 10]
    for a in sorted(aggs, key=lambda a: (a["load"], a["variant"])):
        lines.append(
            f"| {a['load']:.0%} | {a['variant']} | {a['latency_p50_s']:.2f} "
            f"| {a['latency_p90_s']:.2f} | {a['latency_p99_s']:.2f} | {a['ttft_p99_s']:.2f} "
            f"| {a['tpot_p99_s'] * 1000:.0f} | {a['goodput_rps']:.2f} | {a['shed']} "
            f"| {a['rejected']} |"
        )
    return "\n".join(lines)
