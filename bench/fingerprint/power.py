"""Power and false-positive rate of a fingerprint check, per change and check size, with and
without log-probabilities. Comparisons resample from the cached pools (bench/fingerprint/pools.py)
and go through the real `compare` (every test, Holm's combination, 1000 permutations).

    flock /tmp/turnout-bench.lock .venv/bin/python bench/fingerprint/power.py

Writes bench/results/fingerprint_power.{md,json,png}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pools import POOLS_DB, load_greedy, load_pool

from turnout.fingerprint.compare import compare
from turnout.fingerprint.evidence import Evidence
from turnout.fingerprint.samples import ProbeRun, Sample
from turnout.fingerprint.store import FingerprintStore
from turnout.fingerprint.suite import builtin_suite
from turnout.fingerprint.verdict import holm

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
ALPHA = 0.05
BASELINE_PER_PROBE = 10  # half the `baseline` command's 20: the pools are small on two cores
GREEDY_PER_PROBE = 2  # what a probe run asks for where logprobs are served
EMPTY_SHARE = 0.13  # the hidden-prompt proxy: empty answers 2% → 15%
# The tests a check ran before failed/empty answers and agreement voted and logprobs were served.
PREVIOUS = ("mmd", "typicality", "length", "metadata")
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


def emptied(s: Sample) -> Sample:
    return dataclasses.replace(s, text="", completion_tokens=0, token_logprob=None)


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    pool: str | None  # None: fresh from SmolLM2, disjoint from the baseline
    share: float = 1.0  # of the fresh completions from `pool`
    empty: float = 0.0  # of the fresh completions replaced by an empty answer


SCENARIOS = (
    Scenario("null", "smollm2 vs smollm2 (must not alarm)", None),
    Scenario("swap", "full swap smollm2 → gemma 3 270M", "gemma"),
    Scenario("partial-0.5", "half the answers from gemma", "gemma", share=0.5),
    Scenario("prefix", "hidden system prompt", "smollm2-prefix"),
    Scenario("temp-1.3", "temperature 1.0 → 1.3", "smollm2-t1.3"),
    Scenario("temp-0.7", "temperature 1.0 → 0.7", "smollm2-t0.7"),
    Scenario("empty", f"{EMPTY_SHARE:.0%} more empty answers", None, empty=EMPTY_SHARE),
)
SHARES = {sc.name: sc.share for sc in SCENARIOS}


def _greedy(rng: np.random.Generator, g: list[Sample], n: int = GREEDY_PER_PROBE) -> list[Sample]:
    return [g[i] for i in rng.permutation(len(g))[:n]]


def drawer(pools: Pools, greedy: Pools, sc: Scenario, logprobs: bool) -> Draw:
    base_pool = pools["smollm2"]

    def draw(rng: np.random.Generator, nb: int, nf: int) -> tuple[list[Sample], list[Sample]]:
        baseline, fresh = [], []
        for probe, samples in base_pool.items():
            order = rng.permutation(len(samples))
            baseline += [samples[i] for i in order[:nb]]
            spare = [samples[i] for i in order[nb:]]
            theirs = pools[sc.pool][probe] if sc.pool else spare
            picks = rng.permutation(len(theirs))
            swapped = int(np.sum(rng.random(nf) < sc.share)) if sc.pool else 0
            mine = [theirs[i] for i in picks[:swapped]] + spare[: nf - swapped]
            fresh += [emptied(s) if rng.random() < sc.empty else s for s in mine]
            if logprobs:  # greedy samples too come from the changed pool at its share
                baseline += _greedy(rng, greedy["smollm2"].get(probe, []))
                for _ in range(GREEDY_PER_PROBE):
                    changed = sc.pool is not None and rng.random() < sc.share
                    fresh += _greedy(
                        rng, greedy[sc.pool if changed else "smollm2"].get(probe, []), 1
                    )
        if not logprobs:  # a deployment that serves none
            baseline = [dataclasses.replace(s, token_logprob=None) for s in baseline]
            fresh = [dataclasses.replace(s, token_logprob=None) for s in fresh]
        return baseline, fresh

    return draw


@dataclass
class Cell:
    scenario: str
    logprobs: bool
    baseline_n: int
    fresh_n: int
    reps: int
    rejections: int = 0
    previous: int = 0  # rejections by the previous set of tests alone (Holm over PREVIOUS)
    by_test: dict[str, int] = dataclasses.field(default_factory=dict)
    # per probe: SmolLM2's pool and the changed pool the draws came from (0: no changed pool)
    pools: tuple[int, int] = (0, 0)

    @property
    def rate(self) -> float:
        return self.rejections / self.reps

    @property
    def whole_pool(self) -> bool:
        """Every comparison's fresh run held the whole changed pool, or all of SmolLM2's
        completions left after the baseline: comparisons then differed only in the baseline
        draw and the permutations. (A partial swap's mix varies from draw to draw.)"""
        nf, share = self.fresh_n // 25, SHARES[self.scenario]
        smollm2, changed = self.pools
        if changed:
            return share == 1 and changed == nf
        return smollm2 == self.baseline_n // 25 + nf

    def as_dict(self) -> dict[str, object]:
        lo, hi = wilson(self.rejections, self.reps)
        return {
            "scenario": self.scenario,
            "logprobs": self.logprobs,
            "baseline_completions": self.baseline_n,
            "fresh_completions": self.fresh_n,
            "reps": self.reps,
            "rejection_rate": self.rate,
            "ci95": [lo, hi],
            "previous_tests_rate": self.previous / self.reps,
            "rejected_by": {k: v / self.reps for k, v in self.by_test.items()},
            "pools_per_probe": list(self.pools),
            "fresh_is_whole_pool": self.whole_pool,
        }


def _previous_verdict(evidence: list[Evidence]) -> bool:
    chosen = [dataclasses.replace(e, rejected=False) for e in evidence if e.name in PREVIOUS]
    return holm(chosen, ALPHA).changed


def measure(draw: Draw, cell: Cell, seed: int) -> Cell:
    digest = builtin_suite().digest()
    rng = np.random.default_rng(seed)
    nb, nf = cell.baseline_n // 25, cell.fresh_n // 25
    for i in range(cell.reps):
        b, f = draw(rng, nb, nf)
        base = ProbeRun(f"b{i}", "bench", "builtin", digest, 0.0, samples=b)
        fresh = ProbeRun(f"f{i}", "bench", "builtin", digest, 0.0, samples=f)
        verdict = compare(base, fresh, alpha=ALPHA, seed=seed * 100_000 + i)
        cell.rejections += verdict.changed
        cell.previous += _previous_verdict(verdict.evidence)
        for e in verdict.evidence:
            if e.rejected:
                cell.by_test[e.name] = cell.by_test.get(e.name, 0) + 1
    return cell


def plot(cells: list[Cell], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110, sharey=True)
    for ax, logprobs in zip(axes, (False, True), strict=True):
        for sc in SCENARIOS:
            pts = sorted(
                (c.fresh_n, c.rate)
                for c in cells
                if c.scenario == sc.name and c.logprobs == logprobs
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=sc.label)
        ax.axhline(ALPHA, color="grey", lw=1, ls=":")
        ax.set_xlabel("fresh completions per check (25 probes)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title("with log-probabilities" if logprobs else "text only (no logprobs served)")
    axes[0].set_ylabel("rejection rate (power; FPR for the null)")
    axes[1].legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=200, help="comparisons per change and size")
    p.add_argument("--null-reps", type=int, default=200, help="null comparisons per size")
    p.add_argument(
        "--sizes", type=int, nargs="*", default=[2, 4], help="fresh completions per probe"
    )
    p.add_argument("--only", nargs="*", help="scenario names (default: all with a pool)")
    p.add_argument("--out", default="fingerprint_power", help="results file name, no suffix")
    p.add_argument(
        "--merge",
        nargs="*",
        default=[],
        help="result JSONs whose cells to keep where this run measured none (later ones win)",
    )
    args = p.parse_args()
    store = FingerprintStore(POOLS_DB)
    names = {"smollm2"} | {sc.pool for sc in SCENARIOS if sc.pool}
    pools = {n: disguised(load_pool(store, n)) for n in names}
    greedy = {n: disguised(load_greedy(store, n)) for n in names}
    sizes = {n: min((len(v) for v in pool.values()), default=0) for n, pool in pools.items()}
    print("pool sizes per probe:", sizes, flush=True)
    cells: list[Cell] = []
    started = time.monotonic()
    for nf in args.sizes:
        for i, sc in enumerate(SCENARIOS):
            if args.only and sc.name not in args.only:
                continue
            # SmolLM2 holds the baseline and, disjoint from it, whatever of the fresh run stays
            # SmolLM2's; a smaller pool would reuse baseline completions in the check.
            own = nf if sc.pool is None or sc.share < 1 else 0
            smollm2, changed = sizes.get("smollm2", 0), sizes.get(sc.pool, 0) if sc.pool else 0
            if smollm2 < BASELINE_PER_PROBE + own or (sc.pool and changed < nf):
                print(f"{sc.name}: pool too small for {nf} a probe, skipped", flush=True)
                continue
            for logprobs in (False, True):
                reps = args.null_reps if sc.name == "null" else args.reps
                cell = Cell(sc.name, logprobs, 25 * BASELINE_PER_PROBE, 25 * nf, reps)
                cell.pools = (smollm2, changed)
                measure(drawer(pools, greedy, sc, logprobs), cell, seed=1000 * nf + 10 * i)
                cells.append(cell)
                lo, hi = wilson(cell.rejections, cell.reps)
                print(
                    f"{sc.name:<12} {'logprobs' if logprobs else 'text':<8} fresh {cell.fresh_n:>3}"
                    f"  rate {cell.rate:.3f} [{lo:.3f}, {hi:.3f}]  previous tests "
                    f"{cell.previous / reps:.3f}  ({time.monotonic() - started:.0f} s)",
                    flush=True,
                )
                write(merged(cells, args.merge), sizes, args)  # a stopped run keeps its cells
    return 0


def merged(cells: list[Cell], files: list[str]) -> list[Cell]:
    """Cells from earlier result files, replaced by this run's where both measured one."""
    out: dict[tuple[str, bool, int], Cell] = {}
    scenarios = {sc.name: sc for sc in SCENARIOS}
    for name in files:
        saved = json.loads(Path(name).read_text())
        for d in saved["cells"]:
            reps = d["reps"]
            cell = Cell(
                d["scenario"],
                d["logprobs"],
                d["baseline_completions"],
                d["fresh_completions"],
                reps,
                round(d["rejection_rate"] * reps),
                round(d["previous_tests_rate"] * reps),
                {k: round(v * reps) for k, v in d["rejected_by"].items()},
            )
            # files written before cells carried their pools: the file's pool sizes
            sizes, pool = saved["pool_sizes"], scenarios[cell.scenario].pool
            smollm2, changed = d.get("pools_per_probe") or (
                sizes["smollm2"],
                sizes[pool] if pool else 0,
            )
            cell.pools = (smollm2, changed)
            out[(cell.scenario, cell.logprobs, cell.fresh_n)] = cell
    for cell in cells:
        out[(cell.scenario, cell.logprobs, cell.fresh_n)] = cell
    order = {sc.name: i for i, sc in enumerate(SCENARIOS)}
    return sorted(out.values(), key=lambda c: (c.fresh_n, order[c.scenario], c.logprobs))


def command_line() -> str:
    """The command as run (interpreter path aside)."""
    niceness = os.nice(0)
    return (
        ("PYTHONPATH=src " if os.environ.get("PYTHONPATH") else "")
        + "flock /tmp/turnout-bench.lock "
        + (f"nice -n {niceness} " if niceness else "")
        + ".venv/bin/python bench/fingerprint/power.py"
        + "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    )


def write(cells: list[Cell], sizes: dict[str, int], args: argparse.Namespace) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = command_line()
    rows = []
    for c in cells:
        lo, hi = wilson(c.rejections, c.reps)
        top = ", ".join(f"{k} {v / c.reps:.2f}" for k, v in sorted(c.by_test.items()))
        drawn = f"{c.pools[0]} / {c.pools[1] or '-'}" + (" (whole)" if c.whole_pool else "")
        rows.append(
            f"| {c.scenario} | {'yes' if c.logprobs else 'no'} | {c.fresh_n} | {c.reps} | "
            f"**{c.rate:.3f}** | [{lo:.3f}, {hi:.3f}] | {c.previous / c.reps:.3f} | "
            f"{drawn} | {top or '-'} |"
        )
    labels = "; ".join(f"`{sc.name}`: {sc.label}" for sc in SCENARIOS)
    md = [
        f"Reproduce: `{command}` (pools first: `flock /tmp/turnout-bench.lock .venv/bin/python "
        "bench/fingerprint/pools.py`)",
        "",
        "# Fingerprint checks: power and false-positive rate per change and check size",
        "",
        "Built-in suite (25 text-completion probes), temperature 1.0, max_tokens 32, pools of "
        "real completions from the embedded models (SmolLM2-135M, Gemma 3 270M) through the "
        f"probe runner. Baseline: {25 * BASELINE_PER_PROBE} SmolLM2 completions (half the "
        "`baseline` command's default: the pools are small on two shared cores); the fresh run "
        "from the change's pool, disjoint from the baseline, every answer under SmolLM2's name. "
        f"Verdict: every test, weighted Holm at α = {ALPHA}, 1000 permutations. "
        "`logprobs`: the deployment serves log-probabilities (the sampled tokens' and "
        f"{GREEDY_PER_PROBE} greedy top-5 samples a probe on each side); `no`: text only. "
        "`previous tests`: Holm over the tests a check had before (MMD, typicality, length, "
        "metadata), on the same draws. `empty` replaces a share of SmolLM2 answers with empty "
        "ones. Pool sizes per probe in this run: "
        + ", ".join(f"{k} {v}" for k, v in sorted(sizes.items()))
        + ". `pools`: per probe, the SmolLM2 pool / the changed pool each comparison drew from; "
        "`whole`: every comparison's fresh run held that whole pool (the changed pool, or "
        "SmolLM2's completions left after the baseline), so comparisons differ only in the "
        "baseline draw, the permutations (and for `empty` which answers are emptied): the rate "
        "is conditional on that one fresh set "
        "(the interval does not cover the fresh run's sampling). Baseline and fresh run are "
        "disjoint within every comparison; across comparisons they reuse the pools.",
        "",
        f"Changes: {labels}.",
        "",
        "Rate = share of comparisons judged changed (power; for `null`, the false-positive "
        "rate). CI: Wilson 95%.",
        "",
        "| change | logprobs | fresh completions | comparisons | rate | 95% CI | "
        "previous tests | pools | rejected by |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"![power curves]({args.out}.png)",
    ]
    (RESULTS / f"{args.out}.md").write_text("\n".join(md) + "\n")
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps(
            {
                "command": command,
                "alpha": ALPHA,
                "baseline_per_probe": BASELINE_PER_PROBE,
                "pool_sizes": sizes,
                "cells": [c.as_dict() for c in cells],
            },
            indent=2,
        )
        + "\n"
    )
    plot(cells, RESULTS / f"{args.out}.png")
    print(f"wrote {RESULTS / args.out}.md")


if __name__ == "__main__":
    sys.exit(main())
