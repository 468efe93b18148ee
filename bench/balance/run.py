"""Balancing benchmark, in simulation: p99 latency and TTFT per strategy at 50/70/90% load.

Runs `turnout.sim` (the gateway's own balancer and length predictor in front of simulated
continuous-batching instances) for each scenario, load and seed, and checks the targets of
issue 4: least_work's p99 latency at 70–90% load ≥ 40% below round_robin and least_requests,
and within 15% of the oracle that knows every request's true length. Also compares the length
predictor with the two naive baselines (assume max_tokens, assume the global mean).

Results: bench/results/balance_sim.{md,json}. Run under the shared benchmark lock:

    flock /tmp/turnout-bench.lock .venv/bin/python bench/balance/run.py
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from turnout.sim.sweep import Sweep, Variant, aggregate  # noqa: E402
from turnout.sim.timing import preset  # noqa: E402
from turnout.sim.workload import workload  # noqa: E402

RESULTS = REPO / "bench" / "results"
STRATEGIES = [
    Variant("round_robin"),
    Variant("least_requests"),
    Variant("power_of_two"),
    Variant("least_work"),
    Variant("least_work", affinity=True),
    Variant("oracle"),
]
PREDICTOR_VARIANTS = [
    Variant("least_work", predictor="max_tokens"),
    Variant("least_work", predictor="global_mean"),
    Variant("least_work", learn_rates=False),  # told each instance's true speed
    Variant("oracle", learn_rates=False),
]
SCENARIOS: dict[str, dict[str, Any]] = {
    "h100x4": {
        "title": "4 × dense 8B on H100 (homogeneous), mixed workload",
        "profiles": ["dense-8b-h100"] * 4,
        "predictors": True,
    },
    "dense+moe": {
        "title": "2 × dense 8B + 2 × MoE on H100 (mixed fleet), mixed workload",
        "profiles": ["dense-8b-h100"] * 2 + ["moe-h100"] * 2,
        "predictors": False,
    },
    "l4x4": {
        "title": "4 × dense 8B on L4 (KV cache and batch bound), mixed workload",
        "profiles": ["dense-8b-l4"] * 4,
        "predictors": False,
    },
}


def _point(job: tuple[str, float, int, int]) -> list[dict[str, Any]]:
    scenario, load, seed, requests = job
    spec = SCENARIOS[scenario]
    variants = STRATEGIES + (PREDICTOR_VARIANTS if spec["predictors"] else [])
    sweep = Sweep(
        [preset(p) for p in spec["profiles"]], workload("mixed"), [load], variants, [seed], requests
    )
    rows = sweep.run()
    for r in rows:
        r["scenario"] = scenario
    return rows


def _mean(aggs: list[dict[str, Any]], load: float, variant: str, metric: str) -> float:
    for a in aggs:
        if a["load"] == load and a["variant"] == variant:
            return float(a[metric])
    return math.nan


def _targets(aggs: list[dict[str, Any]], loads: list[float]) -> list[dict[str, Any]]:
    out = []
    for load in loads:
        if load < 0.7:
            continue
        lw = _mean(aggs, load, "least_work", "latency_p99_s")
        rr = _mean(aggs, load, "round_robin", "latency_p99_s")
        lr = _mean(aggs, load, "least_requests", "latency_p99_s")
        oracle = _mean(aggs, load, "oracle", "latency_p99_s")
        out.append(
            {
                "load": load,
                "vs_round_robin": 1 - lw / rr,
                "vs_least_requests": 1 - lw / lr,
                "vs_oracle": lw / oracle - 1,
                "met": (1 - lw / rr >= 0.4) and (1 - lw / lr >= 0.4) and (lw / oracle - 1 <= 0.15),
            }
        )
    return out


def _md_table(aggs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| load | strategy | p99 latency s (min–max over seeds) | p90 s | mean s "
        "| p99 TTFT s | p99 TPOT ms | goodput rps | shed | rejected |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in sorted(aggs, key=lambda a: (a["load"], a["variant"])):
        lines.append(
            f"| {a['load']:.0%} | {a['variant']} | {a['latency_p99_s']:.1f} "
            f"({a['latency_p99_s_min']:.1f}–{a['latency_p99_s_max']:.1f}) "
            f"| {a['latency_p90_s']:.1f} | {a['latency_mean_s']:.2f} | {a['ttft_p99_s']:.2f} "
            f"| {a['tpot_p99_s'] * 1000:.0f} | {a['goodput_rps']:.2f} | {a['shed']} "
            f"| {a['rejected']} |"
        )
    return lines


def _predictor_table(rows: list[dict[str, Any]]) -> list[str]:
    """Length-prediction error per predictor, pooled over every run that used it."""
    by: dict[str, list[dict[str, float]]] = {}
    for r in rows:
        if "length_errors" not in r or r["variant"].startswith("oracle"):
            continue
        name = r["variant"].split("pred=")[1] if "pred=" in r["variant"] else "family (default)"
        by.setdefault(name, []).append(r["length_errors"])
    lines = [
        "| predictor | MAE tokens | RMSE tokens | mean abs log ratio | p90 coverage |",
        "|---|---|---|---|---|",
    ]
    for name, es in sorted(by.items()):
        n = len(es)
        lines.append(
            f"| {name} | {sum(e['mae_tokens'] for e in es) / n:.0f} "
            f"| {sum(e['rmse_tokens'] for e in es) / n:.0f} "
            f"| {sum(e['mean_abs_log_ratio'] for e in es) / n:.2f} "
            f"| {sum(e['p90_coverage'] for e in es) / n:.2f} |"
        )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--loads", default="0.5,0.7,0.9")
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--requests", type=int, default=4000, help="per run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="balance_sim")
    args = ap.parse_args()
    scenarios = args.scenarios.split(",")
    loads = [float(x) for x in args.loads.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    jobs = [(s, load, seed, args.requests) for s in scenarios for load in loads for seed in seeds]
    started = time.time()
    rows: list[dict[str, Any]] = []
    with multiprocessing.Pool(args.workers) as pool:
        for k, part in enumerate(pool.imap_unordered(_point, jobs), 1):
            rows.extend(part)
            r = part[0]
            print(
                f"[{k}/{len(jobs)}] {r['scenario']} load {r['load']:.0%} seed {r['seed']} "
                f"({time.time() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    command = "flock /tmp/turnout-bench.lock .venv/bin/python bench/balance/run.py " + " ".join(
        sys.argv[1:]
    )
    md = [
        "# Balancing in simulation",
        "",
        f"Reproduce: `{command.strip()}`",
        "",
        f"Machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.requests} requests per run (first 10% warm-up, "
        f"left out), seeds {args.seeds}; took {time.time() - started:.0f} s.",
        "Every strategy runs the gateway's own `turnout.routing.balance` code; least_work learns "
        "each instance's prefill and decode speed online and predicts lengths with the default "
        "`FamilyQuantiles`; the oracle is least_work told every request's true length (it learns "
        "instance speeds like least_work does). The simulator has no admission control: nothing "
        "is shed or rejected (columns kept so that no strategy can look good by shedding).",
        "",
    ]
    doc: dict[str, Any] = {
        "command": command.strip(),
        "requests": args.requests,
        "seeds": seeds,
        "scenarios": {},
    }
    for s in scenarios:
        srows = [r for r in rows if r["scenario"] == s]
        aggs = aggregate(srows)
        targets = _targets(aggs, loads)
        doc["scenarios"][s] = {
            "title": SCENARIOS[s]["title"],
            "profiles": SCENARIOS[s]["profiles"],
            "aggregate": aggs,
            "targets": targets,
            "rows": srows,
        }
        md += [f"## {SCENARIOS[s]['title']}", "", *_md_table(aggs), ""]
        md += ["Targets (least_work p99 latency, mean over seeds):", ""]
        for t in targets:
            md.append(
                f"- load {t['load']:.0%}: {t['vs_round_robin']:+.0%} lower than round_robin, "
                f"{t['vs_least_requests']:+.0%} lower than least_requests, "
                f"{t['vs_oracle']:+.0%} vs the oracle — target {'met' if t['met'] else 'NOT met'}"
            )
        md.append("")
        if SCENARIOS[s]["predictors"]:
            md += [
                "Length prediction error (pooled over this scenario's runs):",
                "",
                *_predictor_table(srows),
                "",
            ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8"
    )
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
