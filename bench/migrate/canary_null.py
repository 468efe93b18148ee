"""How often the live canary rolls back a candidate that is exactly as good as the old model.

    flock /tmp/turnout-bench.lock .venv/bin/python bench/migrate/canary_null.py

The canary re-asks the gate as evidence arrives (every candidate request while evidence is thin,
then every ~2% more), so its chance of a false FAIL is not the gate's α per look. This drives the
real `Canary` (no gateway, no network) with simulated requests whose success, latency and cost come
from the same distributions on both arms, through every stage, and counts the rollbacks; and, for
a candidate made worse by a known amount, how many candidate requests it takes to roll back.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from turnout.config.schema import CanaryConfig, CanaryGate, ModelConfig
from turnout.migrate.canary import COMPLETED, ROLLED_BACK, Canary, CanaryMetrics
from turnout.migrate.events import EventLog
from turnout.migrate.evidence import Observation

ROOT = Path(__file__).resolve().parents[2]
COMMAND = "flock /tmp/turnout-bench.lock .venv/bin/python bench/migrate/canary_null.py"


def simulate(
    seed: int, stages: tuple[float, ...], min_requests: int, worse: dict[str, float]
) -> dict[str, Any]:
    rng = random.Random(seed)
    config = CanaryConfig(
        deployment="cand",
        stages=stages,
        min_requests_per_stage=min_requests,
        max_requests_per_stage=20 * min_requests,
        min_stage_s=0,
        gate=CanaryGate(),
    )
    model = ModelConfig(name="m", deployments=("old",), canary=config)
    canary = Canary(model, EventLog("sqlite:///unused.db"), CanaryMetrics(CollectorRegistry()), rng)
    n = cand_n = 0
    while canary.status not in (ROLLED_BACK, COMPLETED) and n < 10_000_000:
        n += 1
        arm = "candidate" if rng.random() * 100 < canary.percent else "old"
        bad = worse if arm == "candidate" else {}
        ok = rng.random() < 0.97 - bad.get("success", 0.0)
        latency = rng.lognormvariate(0, 0.5) * (1 + bad.get("latency", 0.0))
        cost = rng.lognormvariate(-9, 0.3)
        cand_n += arm == "candidate"
        canary.add(Observation(arm, ok, latency, cost), canary.stage)
    return {"outcome": canary.status, "stage": canary.stage + 1, "requests": n, "candidate": cand_n}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--canaries", type=int, default=100)
    ap.add_argument("--min-requests", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "bench/results"))
    args = ap.parse_args()
    logging.getLogger("turnout.migrate").setLevel(logging.CRITICAL)  # the rollbacks are the data
    stages = (1.0, 5.0, 25.0, 50.0, 100.0)
    scenarios: dict[str, dict[str, float]] = {
        "identical (null)": {},
        "success −10 points": {"success": 0.10},
        "latency ×1.6": {"latency": 0.6},
    }
    rows = []
    for name, worse in scenarios.items():
        t0 = time.perf_counter()
        runs = [
            simulate(seed, stages, args.min_requests, worse)
            for seed in range(args.canaries if not worse else max(20, args.canaries // 5))
        ]
        rolled = [r for r in runs if r["outcome"] == ROLLED_BACK]
        done = [r for r in runs if r["outcome"] == COMPLETED]
        rows.append(
            {
                "scenario": name,
                "canaries": len(runs),
                "rolled_back": len(rolled),
                "completed": len(done),
                "rollback_rate": len(rolled) / len(runs),
                "candidate_requests_to_rollback_median": (
                    statistics.median(r["candidate"] for r in rolled) if rolled else None
                ),
                "rollback_stage_median": (
                    statistics.median(r["stage"] for r in rolled) if rolled else None
                ),
                "requests_to_complete_median": (
                    statistics.median(r["requests"] for r in done) if done else None
                ),
                "cpu_s": round(time.perf_counter() - t0, 1),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    results = {
        "command": COMMAND,
        "stages": stages,
        "min_requests": args.min_requests,
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "migrate_canary_null.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"Reproduce: `{COMMAND}`",
        "",
        "# Live canary: false rollbacks of an equal candidate, and detection of worse ones",
        "",
        f"The real `Canary` fed simulated requests (no network). Stages "
        f"{'/'.join(f'{s:g}' for s in stages)}%, min_requests_per_stage {args.min_requests}, "
        f"max {20 * args.min_requests}, gate defaults (α 0.05 over the whole canary: "
        f"{0.05 / len(stages):g} per look; Holm over success, "
        "latency, cost; margins 0.05 / 25% / 25%). Both arms: success 97%, latency "
        "lognormal(0, 0.5), cost lognormal(−9, 0.3); the worse candidates differ only as named.",
        "",
        "| candidate | canaries | rolled back | completed | rollback rate | candidate requests "
        "to rollback (median) | at stage (median) | requests to complete (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['canaries']} | {r['rolled_back']} | {r['completed']} | "
            f"{r['rollback_rate']:.3f} | {r['candidate_requests_to_rollback_median'] or '-'} | "
            f"{r['rollback_stage_median'] or '-'} | {r['requests_to_complete_median'] or '-'} |"
        )
    lines += [
        "",
        "Before looks were set to α ÷ number of stages (α 0.05 at every look), the same run "
        "rolled back 8 of 100 equal candidates (median at 156 candidate requests, stage 2.5), "
        "completed the rest in a median 13,670 requests, and caught the −10-point candidate in "
        "a median 41 candidate requests and the ×1.6 one in 6.5.",
    ]
    (out / "migrate_canary_null.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
