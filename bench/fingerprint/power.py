"""Power and false-positive rate of a fingerprint check, per scenario, vs the number of probe
queries. Comparisons resample from the cached pools (bench/fingerprint/pools.py) and go through
the real `compare` (every test, Holm's combination, 1000 permutations).

    flock /tmp/turnout-bench.lock .venv/bin/python bench/fingerprint/power.py

Writes bench/results/fingerprint_power.{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pools import POOLS_DB, load_pool

from turnout.fingerprint.compare import compare
from turnout.fingerprint.samples import ProbeRun, Sample
from turnout.fingerprint.store import FingerprintStore
from turnout.fingerprint.suite import builtin_suite

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
ALPHA = 0.05
BASELINE_PER_PROBE = 20  # the `baseline` command's default: 500 completions
Pools = dict[str, dict[str, list[Sample]]]
# (baseline samples, fresh samples) for one comparison
Draw = Callable[[np.random.Generator, int, int], tuple[list[Sample], list[Sample]]]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def disguised(pool: dict[str, list[Sample]]) -> dict[str, list[Sample]]:
    """Every answer under one model name, as a provider swapping models silently would answer
    (the pools hold the real names): metadata then gives nothing away, and the statistics are
    measured on behaviour alone."""
    for samples in pool.values():
        for s in samples:
            s.model = "smollm2-135m"
    return pool


def drawer(pools: Pools, scenario: str, rho: float = 1.0) -> Draw:
    """Baseline from SmolLM2's pool; fresh from the scenario's pool (a share ρ of it, the rest
    from SmolLM2 samples the baseline did not use)."""
    base_pool = pools["smollm2"]
    other = pools.get(scenario)

    def draw(rng: np.random.Generator, nb: int, nf: int) -> tuple[list[Sample], list[Sample]]:
        baseline, fresh = [], []
        for probe, samples in base_pool.items():
            order = rng.permutation(len(samples))
            baseline += [samples[i] for i in order[:nb]]
            spare = [samples[i] for i in order[nb:]]
            if other is None:  # the null: the same model, disjoint samples
                fresh += spare[:nf]
                continue
            theirs = other[probe]
            picks = rng.permutation(len(theirs))
            swapped = int(np.sum(rng.random(nf) < rho))
            fresh += [theirs[i] for i in picks[:swapped]] + spare[: nf - swapped]
        return baseline, fresh

    return draw


@dataclass
class Cell:
    scenario: str
    baseline_n: int
    fresh_n: int
    reps: int
    rejections: int
    mmd_alone: int  # rejections by the MMD test alone at α
    by_test: dict[str, int]

    @property
    def rate(self) -> float:
        return self.rejections / self.reps

    def as_dict(self) -> dict[str, object]:
        lo, hi = wilson(self.rejections, self.reps)
        return {
            "scenario": self.scenario,
            "baseline_completions": self.baseline_n,
            "fresh_completions": self.fresh_n,
            "reps": self.reps,
            "rejection_rate": self.rate,
            "ci95": [lo, hi],
            "mmd_alone_rate": self.mmd_alone / self.reps,
            "rejected_by": {k: v / self.reps for k, v in self.by_test.items()},
        }


def measure(draw: Draw, scenario: str, nb: int, nf: int, reps: int, seed: int) -> Cell:
    digest = builtin_suite().digest()
    rng = np.random.default_rng(seed)
    cell = Cell(scenario, 25 * nb, 25 * nf, reps, 0, 0, {})
    for i in range(reps):
        b, f = draw(rng, nb, nf)
        base = ProbeRun(f"b{i}", "bench", "builtin", digest, 0.0, samples=b)
        fresh = ProbeRun(f"f{i}", "bench", "builtin", digest, 0.0, samples=f)
        verdict = compare(base, fresh, alpha=ALPHA, seed=seed * 100_000 + i)
        cell.rejections += verdict.changed
        for e in verdict.evidence:
            if e.rejected:
                cell.by_test[e.name] = cell.by_test.get(e.name, 0) + 1
            if e.name == "mmd" and e.p_value <= ALPHA:
                cell.mmd_alone += 1
    return cell


SCENARIOS = (
    ("null", "smollm2 vs smollm2 (must not alarm)", None, 1.0),
    ("swap", "full swap smollm2 → gemma", "gemma", 1.0),
    ("prefix", "hidden system prompt", "smollm2-prefix", 1.0),
    ("temperature", "temperature 1.0 → 0.7", "smollm2-t0.7", 1.0),
    ("partial-0.1", "partial substitution ρ=0.1", "gemma", 0.1),
    ("partial-0.25", "partial substitution ρ=0.25", "gemma", 0.25),
    ("partial-0.5", "partial substitution ρ=0.5", "gemma", 0.5),
    ("partial-1.0", "partial substitution ρ=1.0", "gemma", 1.0),
)


def plot(cells: list[Cell], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for ax, design in zip(axes, ("product", "symmetric"), strict=True):
        for name, label, _, _ in SCENARIOS:
            pts = sorted(
                (c.fresh_n, c.rate)
                for c in cells
                if c.scenario == name
                and (
                    c.baseline_n == 25 * BASELINE_PER_PROBE
                    if design == "product"
                    else c.baseline_n == c.fresh_n
                )
            )
            if pts:
                style = "--" if name.startswith("partial") else "-"
                ax.plot(*zip(*pts, strict=True), style, marker="o", ms=3, label=label)
        ax.axhline(ALPHA, color="grey", lw=1, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("fresh completions per check (25 probes)")
        ax.set_ylabel("rejection rate (power; FPR for the null)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(
            f"baseline of {25 * BASELINE_PER_PROBE} completions"
            if design != "symmetric"
            else "baseline as large as the check (MET's setup)"
        )
    axes[0].legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=200, help="comparisons per scenario and size")
    p.add_argument("--null-reps", type=int, default=400, help="null comparisons per size")
    p.add_argument(
        "--sizes", type=int, nargs="*", default=[1, 2, 4, 10], help="fresh completions per probe"
    )
    p.add_argument(
        "--symmetric",
        type=int,
        nargs="*",
        default=[2, 10],
        help="per-probe sizes also run with a baseline as small as the check",
    )
    args = p.parse_args()
    store = FingerprintStore(POOLS_DB)
    names = {"smollm2", "gemma", "smollm2-prefix", "smollm2-t0.7"}
    pools = {n: disguised(load_pool(store, n)) for n in names}
    sizes = {n: min(len(v) for v in pool.values()) for n, pool in pools.items()}
    print("pool sizes per probe:", sizes)
    cells: list[Cell] = []
    started = time.monotonic()
    # The product's design first: a 500-completion baseline (20 per probe), checks of N; then
    # MET's, a baseline as small as the check, at two sizes.
    designs = [(BASELINE_PER_PROBE, nf) for nf in args.sizes]
    designs += [(nf, nf) for nf in args.symmetric]
    for nb, nf in designs:
        for i, (name, _, pool, rho) in enumerate(SCENARIOS):
            reps = args.null_reps if pool is None and nb == BASELINE_PER_PROBE else args.reps
            cell = measure(
                drawer(pools, pool or "", rho) if pool else drawer(pools, ""),
                name,
                nb,
                nf,
                reps,
                seed=1000 * nf + 10 * nb + i,
            )
            cells.append(cell)
            lo, hi = wilson(cell.rejections, cell.reps)
            print(
                f"{name:<13} baseline {25 * nb:>3}  fresh {25 * nf:>3}  "
                f"rate {cell.rate:.3f} [{lo:.3f}, {hi:.3f}]  mmd alone "
                f"{cell.mmd_alone / reps:.3f}  ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    write(cells, sizes, args)
    return 0


def _find(cells: list[Cell], scenario: str, fresh_n: int, baseline_n: int) -> Cell | None:
    return next(
        (
            c
            for c in cells
            if c.scenario == scenario and c.fresh_n == fresh_n and c.baseline_n == baseline_n
        ),
        None,
    )


def targets(cells: list[Cell]) -> list[str]:
    base = 25 * BASELINE_PER_PROBE
    out = []
    for c in (c for c in cells if c.scenario == "null"):
        lo, hi = wilson(c.rejections, c.reps)
        ok = "met" if lo <= ALPHA else "MISSED"
        out.append(
            f"- FPR ≤ α within sampling error (baseline {c.baseline_n}, fresh {c.fresh_n}): "
            f"{c.rate:.3f} [{lo:.3f}, {hi:.3f}] over {c.reps} comparisons — {ok}"
        )
    for scenario, n, goal in (
        ("swap", 50, 0.99),
        ("prefix", 250, 0.9),
        ("temperature", 250, 0.9),
        ("partial-0.5", 250, 0.8),
    ):
        for b in (base, n):
            found = _find(cells, scenario, n, b)
            if found is not None:
                ok = "met" if found.rate >= goal else "MISSED"
                out.append(
                    f"- {scenario}: power ≥ {goal} with {n} completions (baseline {b}): "
                    f"{found.rate:.3f} — {ok}"
                )
    return out


def write(cells: list[Cell], sizes: dict[str, int], args: argparse.Namespace) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = "flock /tmp/turnout-bench.lock .venv/bin/python bench/fingerprint/power.py"
    if args.reps != 200 or args.null_reps != 400:
        command += f" --reps {args.reps} --null-reps {args.null_reps}"
    if args.sizes != [1, 2, 4, 10] or args.symmetric != [2, 10]:
        command += " --sizes " + " ".join(map(str, args.sizes))
        command += " --symmetric " + " ".join(map(str, args.symmetric))
    rows = []
    for c in cells:
        lo, hi = wilson(c.rejections, c.reps)
        top = ", ".join(f"{k} {v / c.reps:.2f}" for k, v in sorted(c.by_test.items()))
        rows.append(
            f"| {c.scenario} | {c.baseline_n} | {c.fresh_n} | {c.reps} | "
            f"**{c.rate:.3f}** | [{lo:.3f}, {hi:.3f}] | {c.mmd_alone / c.reps:.3f} | "
            f"{top or '-'} |"
        )
    md = [
        "# Fingerprint checks: power and false-positive rate vs probe queries",
        "",
        f"Reproduce (pools first: `flock /tmp/turnout-bench.lock .venv/bin/python "
        f"bench/fingerprint/pools.py`): `{command}`",
        "",
        "Built-in suite (25 text-completion probes), temperature 1.0, max_tokens 32. Baseline from "
        "SmolLM2-135M's pool; the fresh run from the scenario's pool, disjoint from the baseline. "
        f"Verdict: every test, weighted Holm at α = {ALPHA}, 1000 permutations. "
        "Pool sizes per probe: " + ", ".join(f"{k} {v}" for k, v in sorted(sizes.items())) + ".",
        "Rate = share of comparisons judged changed (power; for `null`, the false-positive "
        "rate). CI: Wilson 95%. `mmd alone`: the MMD test by itself at α.",
        "",
        "| scenario | baseline completions | fresh completions | comparisons | rate | 95% CI | "
        "mmd alone | rejected by |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "![power curves](fingerprint_power.png)",
        "",
        "## Targets (baseline of 500 completions unless said)",
        "",
        *targets(cells),
    ]
    (RESULTS / "fingerprint_power.md").write_text("\n".join(md) + "\n")
    (RESULTS / "fingerprint_power.json").write_text(
        json.dumps(
            {
                "command": command,
                "alpha": ALPHA,
                "pool_sizes": sizes,
                "cells": [c.as_dict() for c in cells],
            },
            indent=2,
        )
        + "\n"
    )
    plot(cells, RESULTS / "fingerprint_power.png")
    print(f"wrote {RESULTS / 'fingerprint_power.md'}")


if __name__ == "__main__":
    sys.exit(main())
