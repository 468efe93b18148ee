"""`turnout migrate replay --sequential` measured: how often it fails a null migration, how often it
passes one, its power on real changes and how many pairs it replays before it decides, against
the planned size (--sample). Each run resamples a replay from the cached pools of real answers
(bench/migrate/pools.py) in a random order and judges it at the looks the command would take, at
each look's share of α, through the real diff and gate; it stops where the command would.

    flock /tmp/turnout-bench.lock .venv/bin/python bench/migrate/pools.py
    flock /tmp/turnout-bench.lock .venv/bin/python bench/migrate/gate_sequential.py

Writes bench/results/migrate_gate_sequential.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gate_power import ALPHA, NULLS, RESULTS, SCENARIOS, CachedEmbed, draw, wilson
from pools import POOLS, PROMPTS, load

from turnout.migrate.analysis import GateSettings, judge
from turnout.migrate.diff import diff
from turnout.migrate.sequential import MIN_LOOK, SPENDING, look_level, schedule

COMMAND = (
    "flock /tmp/turnout-bench.lock .venv/bin/python bench/migrate/gate_sequential.py "
    "--reps {reps} --null-reps {null_reps} --sizes {sizes}"
)


def one_run(pairs: list[Any], settings: GateSettings, embed: CachedEmbed) -> tuple[str, int]:
    """(decision, pairs replayed) for one sequential replay of `pairs` in their order."""
    planned, previous = len(pairs), 0
    outcome = "inconclusive"
    for n in schedule(planned, MIN_LOOK):
        level = look_level(settings.alpha, n, previous, planned)
        diffs, _ = diff(pairs[:n], embed=embed)
        fam, _ = judge(diffs, replace(settings, alpha=level))
        outcome, previous = fam.outcome.value, n
        if outcome != "inconclusive":
            break
    return outcome, previous


def run(args: argparse.Namespace) -> dict[str, Any]:
    pools = load()
    for pool in POOLS:
        got = pools.get(pool.name, {})
        if len(got) < len(PROMPTS) or min(len(v) for v in got.values()) < pool.per_prompt:
            raise SystemExit(f"pool {pool.name} is incomplete: run bench/migrate/pools.py first")
    texts = [a.text for p in pools.values() for xs in p.values() for a in xs] + list(PROMPTS)
    embed = CachedEmbed(texts)
    settings = GateSettings(alpha=ALPHA)
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()
    rows = []
    for planned in args.sizes:
        for name, pool in SCENARIOS.items():
            reps = args.null_reps if name in NULLS else args.reps
            counts = {"pass": 0, "fail": 0, "inconclusive": 0}
            used: list[int] = []
            decided_at: list[int] = []
            for i in range(reps):
                outcome, n = one_run(draw(pools, pool, planned, rng), settings, embed)
                counts[outcome] += 1
                used.append(n)
                if outcome != "inconclusive":
                    decided_at.append(n)
                if (i + 1) % 50 == 0:
                    print(
                        f"  {name} planned {planned}: {i + 1}/{reps}", file=sys.stderr, flush=True
                    )
            rows.append(
                {
                    "scenario": name,
                    "planned": planned,
                    "looks": schedule(planned, MIN_LOOK),
                    "runs": reps,
                    "fail": counts["fail"] / reps,
                    "fail_ci": wilson(counts["fail"], reps),
                    "pass": counts["pass"] / reps,
                    "pass_ci": wilson(counts["pass"], reps),
                    "mean_pairs": float(np.mean(used)),
                    "mean_pairs_to_decision": float(np.mean(decided_at)) if decided_at else None,
                }
            )
            r = rows[-1]
            print(
                f"{name:<16} planned {planned:<3} FAIL {r['fail']:.3f} PASS {r['pass']:.3f} "
                f"mean pairs {r['mean_pairs']:.1f}",
                flush=True,
            )
    return {
        "alpha": ALPHA,
        "spending": SPENDING,
        "min_look": MIN_LOOK,
        "prompts": len(PROMPTS),
        "took_s": time.monotonic() - started,
        "rows": rows,
    }


def markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        "# Migration gate, sequential: error rates across looks and pairs to a decision",
        "",
        f"Reproduce (pools first: `flock /tmp/turnout-bench.lock .venv/bin/python "
        f"bench/migrate/pools.py`): `{command}`",
        "",
        f"The pools and scenarios of `migrate_gate.md` ({result['prompts']} text-completion "
        "prompts; old model SmolLM2-135M at temperature 0.7). Each run draws `planned` pairs in "
        "a random order and judges them as `turnout migrate replay --sequential --sample "
        "PLANNED` would: at the looks listed (halving back from the planned size, down to "
        f"{result['min_look']} pairs), each at its share of α = {result['alpha']} "
        f"({result['spending']}), stopping at the first PASS or FAIL. For the nulls `FAIL` is "
        "the false-positive rate across all looks. `mean pairs` counts every run, "
        "`to a decision` only the runs that decided. CI: Wilson 95%.",
        "",
        "| scenario | planned | looks | runs | FAIL | 95% CI | PASS | 95% CI | mean pairs | "
        "mean pairs to a decision |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        to = r["mean_pairs_to_decision"]
        lines.append(
            f"| {r['scenario']} | {r['planned']} | {', '.join(map(str, r['looks']))} | "
            f"{r['runs']} | **{r['fail']:.3f}** | [{r['fail_ci'][0]:.3f}, {r['fail_ci'][1]:.3f}] | "
            f"**{r['pass']:.3f}** | [{r['pass_ci'][0]:.3f}, {r['pass_ci'][1]:.3f}] | "
            f"{r['mean_pairs']:.1f} | {'-' if to is None else f'{to:.1f}'} |"
        )
    nulls = [r for r in result["rows"] if r["scenario"] in NULLS]
    worst = max(nulls, key=lambda r: r["fail"])
    verdict = "met" if worst["fail"] <= result["alpha"] else "MISSED"
    lines += [
        "",
        f"Target FPR ≤ α across looks on null migrations: **{verdict}** (highest "
        f"{worst['fail']:.3f}, {worst['scenario']} at {worst['planned']} planned).",
        "",
        f"All runs took {result['took_s']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--null-reps", type=int, default=400)
    p.add_argument("--sizes", type=int, nargs="+", default=[40, 60, 80])
    p.add_argument("--seed", type=int, default=2)
    args = p.parse_args()
    result = run(args)
    command = COMMAND.format(
        reps=args.reps, null_reps=args.null_reps, sizes=" ".join(map(str, args.sizes))
    )
    result["command"] = command
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "migrate_gate_sequential.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "migrate_gate_sequential.md").write_text(markdown(result, command))
    print(markdown(result, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
