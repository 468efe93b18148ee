"""Why least_work's p99 cannot be 40% below round_robin's here: the p99 request's own decode.

For each scenario and load of `bench/results/balance_sim.json`, Little's law gives the mean
batch per instance (arrival rate × mean latency / instances); the floor is the p99, over the same
workload, of each request's latency if it ran at that batch with no queueing at all — its own
prefill plus output tokens × the step time at that batch. A work-conserving balancer cannot make
the fleet's average batch smaller, so p99 cannot fall far below this floor. Cheap: no simulation.

    .venv/bin/python bench/balance/floor.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from turnout.sim.report import percentile  # noqa: E402
from turnout.sim.timing import Profile, preset  # noqa: E402
from turnout.sim.workload import SimRequest, generate, workload  # noqa: E402

RESULTS = REPO / "bench" / "results"


def alone(r: SimRequest, p: Profile, batch: int) -> float:
    """A request's latency at `batch` with no queueing: its prefill and its own decode steps."""
    kv = batch * (r.prompt_tokens + r.output_tokens / 2)
    return p.prefill_s(r.prompt_tokens) + r.output_tokens * p.step_s(batch, kv)


def main() -> int:
    sim = json.loads((RESULTS / "balance_sim.json").read_text(encoding="utf-8"))
    w = workload("mixed")
    reqs = generate(w, 1.0, 20_000, 1)
    rows = []
    for scenario in sim["scenarios"].values():
        profiles = [preset(n) for n in scenario["profiles"]]
        by = {(a["load"], a["variant"]): a for a in scenario["aggregate"]}
        for load in sorted({a["load"] for a in scenario["aggregate"]}):
            if load < 0.7:
                continue
            rr, lr = by[(load, "round_robin")], by[(load, "least_requests")]
            lw, oracle = by[(load, "least_work")], by[(load, "oracle")]
            rate = lw["goodput_rps"]  # nothing is shed: what arrived is what completed
            batch = max(1, round(rate * lw["latency_mean_s"] / len(profiles)))

            floor = min(percentile([alone(r, p, batch) for r in reqs], 0.99) for p in profiles)
            target = 0.6 * min(rr["latency_p99_s"], lr["latency_p99_s"])
            rows.append(
                f"| {scenario['title'].split(',')[0]} | {load:.0%} | {batch} | {floor:.1f} "
                f"| {rr['latency_p99_s']:.1f} | {lr['latency_p99_s']:.1f} "
                f"| {lw['latency_p99_s']:.1f} | {oracle['latency_p99_s']:.1f} | {target:.1f} |"
            )
    md = [
        "# Balancing: the p99 floor set by the longest answers' own decode",
        "",
        "Reproduce: `.venv/bin/python bench/balance/floor.py` (reads `balance_sim.json`).",
        "",
        "Mean batch per instance by Little's law from least_work's own run; the floor is the p99",
        "of each request's latency at that batch with no queueing, on the fleet's fastest",
        "instance type. The 40% target is 0.6 × the better of round_robin and least_requests.",
        "",
        "| fleet | load | batch | floor p99 s | round_robin | least_requests | least_work "
        "| oracle | 40% target |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    (RESULTS / "balance_p99_floor.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
