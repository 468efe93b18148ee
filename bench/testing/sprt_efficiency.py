"""SPRT efficiency by seeded simulation: trials needed and error rates, against fixed-size tests.

p0 = 0.9 (acceptable), p1 = 0.7 (regression), α = β = 0.05. For each true pass rate, many
simulated scenarios are judged sequentially (turnout.testing.stats.SPRT, capped at --max-trials)
and by the fixed-size tests that reach the same errors: the normal-approximation n (39) and the
exact binomial n. Prints a table; writes bench/results/testing_sprt.{md,json}.

    flock /tmp/turnout-bench.lock .venv/bin/python bench/testing/sprt_efficiency.py
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from pathlib import Path

from turnout.testing.stats import SPRT, Verdict, exact_fixed_sample_size, fixed_sample_size

RESULTS = Path(__file__).resolve().parents[1] / "results"


def simulate(p: float, sprt: SPRT, runs: int, max_trials: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    trials: list[int] = []
    verdicts = {v: 0 for v in Verdict}
    for _ in range(runs):
        verdict, _, n = sprt.run(iter(lambda: rng.random() < p, None), max_trials)
        trials.append(n)
        verdicts[verdict] += 1
    ordered = sorted(trials)
    return {
        "true_rate": p,
        "mean_trials": statistics.fmean(trials),
        "median_trials": statistics.median(trials),
        "p95_trials": ordered[int(0.95 * (len(ordered) - 1))],
        "max_trials_seen": ordered[-1],
        "flagged_regression": verdicts[Verdict.FAIL] / runs,
        "accepted": verdicts[Verdict.PASS] / runs,
        "inconclusive": verdicts[Verdict.INCONCLUSIVE] / runs,
    }


def _cdf(c: int, n: int, p: float) -> float:
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(c + 1))


def fixed_test(p: float, n: int, critical: int, runs: int, seed: int) -> float:
    """How often a fixed n-trial test (regression when passes ≤ critical) flags a regression."""
    rng = random.Random(seed)
    flagged = 0
    for _ in range(runs):
        passes = sum(rng.random() < p for _ in range(n))
        flagged += passes <= critical
    return flagged / runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20_000)
    ap.add_argument("--max-trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=20261127)
    args = ap.parse_args()
    sprt = SPRT(0.9, 0.7, 0.05, 0.05)
    started = time.perf_counter()
    rates = (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6)
    rows = [
        simulate(p, sprt, args.runs, args.max_trials, args.seed + i) for i, p in enumerate(rates)
    ]
    n_normal = fixed_sample_size(0.9, 0.7, 0.05, 0.05)
    n_exact, c_exact = exact_fixed_sample_size(0.9, 0.7, 0.05, 0.05)
    # At n = 39 the critical count is the largest c whose false-alarm chance stays within α.
    c_normal = max(c for c in range(n_normal + 1) if _cdf(c, n_normal, 0.9) <= 0.05)
    fixed = []
    for label, n, c in (
        ("normal approx.", n_normal, c_normal),
        ("exact binomial", n_exact, c_exact),
    ):
        fixed.append({
            "test": label, "n": n, "critical_passes": c,
            "false_alarm_at_0.9": fixed_test(0.9, n, c, args.runs, args.seed + 100),
            "power_at_0.7": fixed_test(0.7, n, c, args.runs, args.seed + 101),
        })  # fmt: skip
    took = time.perf_counter() - started

    lines = [
        "# SPRT efficiency (turnout.testing.stats.SPRT)",
        "",
        f"p0 = 0.9 acceptable, p1 = 0.7 regression, α = β = 0.05; {args.runs} seeded simulated "
        f"scenarios per true rate (seed {args.seed}), at most {args.max_trials} trials each.",
        "",
        "| true pass rate | mean trials | median | p95 | flagged regression | accepted "
        "| inconclusive |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['true_rate']:.2f} | {r['mean_trials']:.1f} | {r['median_trials']:.0f} | "
            f"{r['p95_trials']} | {r['flagged_regression']:.3f} | {r['accepted']:.3f} | "
            f"{r['inconclusive']:.4f} |"
        )
    lines += [
        "",
        "Fixed-size tests with the same error targets (regression when passes ≤ critical):",
        "",
        "| fixed test | n | critical passes | false alarm at 0.9 | power at 0.7 |",
        "|---|---|---|---|---|",
    ]
    for f in fixed:
        lines.append(
            f"| {f['test']} | {f['n']} | {f['critical_passes']} | "
            f"{f['false_alarm_at_0.9']:.3f} | {f['power_at_0.7']:.3f} |"
        )
    at = {r["true_rate"]: r for r in rows}
    lines += [
        "",
        f"Targets: mean trials ≤ 25 at 0.9 → {at[0.9]['mean_trials']:.1f}; regression flagged "
        f"≥ 95% at 0.7 → {at[0.7]['flagged_regression']:.1%}; fixed-size n for the same errors "
        f"= {n_normal} (normal approximation), {n_exact} (exact binomial).",
        f"Simulation took {took:.1f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "testing_sprt.md").write_text(text)
    (RESULTS / "testing_sprt.json").write_text(json.dumps(
        {"p0": 0.9, "p1": 0.7, "alpha": 0.05, "beta": 0.05, "runs": args.runs,
         "max_trials": args.max_trials, "seed": args.seed, "sequential": rows, "fixed": fixed},
        indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
