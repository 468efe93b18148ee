"""The migration gate's false-positive rate on null migrations, its power on real changes and how
often it can say PASS, against the number of replayed requests. Each run resamples a replay from
the cached pools of real answers (bench/migrate/pools.py) and goes through the real diff and gate
(all-MiniLM-L6-v2 similarity with its old-vs-old calibration, every check, weighted Holm, checks
with too few pairs released as `turnout.migrate.family` says).

    flock /tmp/turnout-bench.lock .venv/bin/python bench/migrate/pools.py
    flock /tmp/turnout-bench.lock .venv/bin/python bench/migrate/gate_power.py

Writes bench/results/migrate_gate.{md,json,png}; bench/migrate/gate_sequential.py measures
`--sequential` on the same pools.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pools import MAX_TOKENS, POOL, POOLS, PROMPTS, load

from turnout.migrate.analysis import GateSettings, judge
from turnout.migrate.diff import diff
from turnout.migrate.records import Answer
from turnout.migrate.replay import Pair
from turnout.testing._minilm import embed as minilm

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
ALPHA = 0.05
SCENARIOS = {
    "null": None,
    "null-same": "same",
    "gemma": "gemma",
    "prompt-prefix": "smollm2-prefix",
    "temperature-1.0": "smollm2-t1.0",
}
COMMAND = (
    "flock /tmp/turnout-bench.lock .venv/bin/python bench/migrate/gate_power.py "
    "--reps {reps} --null-reps {null_reps} --sizes {sizes}"
)
NULLS = ("null", "null-same")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


class CachedEmbed:
    """Every pool text embedded once; the diff then only looks vectors up."""

    def __init__(self, texts: list[str]) -> None:
        unique = sorted(set(t for t in texts if t))
        cache = POOL.with_name("embeddings.npz")
        if cache.exists() and (saved := np.load(cache))["texts"].tolist() == unique:
            vectors = saved["vectors"]
        else:
            vectors = np.asarray(minilm(unique))
            np.savez(cache, texts=np.array(unique), vectors=vectors)
        self.index = {t: vectors[i] for i, t in enumerate(unique)}

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.array([self.index[t] for t in texts])


def draw(
    pools: dict[str, dict[int, list[Answer]]],
    scenario: str | None,
    n: int,
    rng: np.random.Generator,
) -> list[Pair]:
    """A replay of n distinct prompts: recorded answer, the old model's rerun and (for the null)
    the candidate are three distinct SmolLM2 answers; for `same` the candidate is the old model's
    rerun itself (a same-model candidate with the same seed); otherwise the scenario's."""
    prompts = rng.choice(len(PROMPTS), size=n, replace=False)
    pairs = []
    for i in prompts:
        old = pools["smollm2"][int(i)]
        a, b, c = rng.choice(len(old), size=3, replace=False)
        if scenario is None:
            new = old[c]
        elif scenario == "same":
            new = old[b]
        else:
            theirs = pools[scenario][int(i)]
            new = theirs[int(rng.integers(len(theirs)))]
        request = {"prompt": PROMPTS[int(i)], "max_tokens": MAX_TOKENS}
        pairs.append(
            Pair(
                str(i),
                "bench",
                "edge",
                "completion",
                "text_completion",
                request,
                old[a],
                old[b],
                new,
            )
        )
    return pairs


def run(args: argparse.Namespace) -> dict[str, Any]:
    pools = load()
    for pool in POOLS:
        got = pools.get(pool.name, {})
        if len(got) < len(PROMPTS) or min(len(v) for v in got.values()) < pool.per_prompt:
            raise SystemExit(f"pool {pool.name} is incomplete: run bench/migrate/pools.py first")
    # the prompts too: an answer closer to its prompt than to the recorded answer is no match
    texts = [a.text for p in pools.values() for answers in p.values() for a in answers]
    texts += list(PROMPTS)
    started = time.monotonic()
    embed = CachedEmbed(texts)
    embed_s = time.monotonic() - started
    strict = GateSettings(alpha=ALPHA, margin=0.0)
    default = GateSettings(alpha=ALPHA)
    rng = np.random.default_rng(args.seed)
    rows = []
    for n in args.sizes:
        for name, pool in SCENARIOS.items():
            reps = args.null_reps if pool is None else args.reps
            flagged = {"default": 0, "strict": 0}
            reasons: Counter[str] = Counter()
            released: Counter[str] = Counter()
            verdict_pass = all_pass = 0
            needs: list[float] = []
            for _ in range(reps):
                diffs, _ = diff(draw(pools, pool, n, rng), embed=embed)
                fam, _ = judge(diffs, default)
                flagged["default"] += fam.flagged
                reasons.update(fam.failed)
                released.update(fam.released)
                verdict_pass += fam.outcome.value == "pass"
                # the previous rule: every check, however few its pairs, must pass
                all_pass += not fam.flagged and all(v.outcome.value == "pass" for v in fam.verdicts)
                if (need := fam.needs()["pass"]) is not None:
                    needs.append(need)
                flagged["strict"] += judge(diffs, strict)[0].flagged
            k = flagged["default"]
            rows.append(
                {
                    "scenario": name,
                    "requests": n,
                    "runs": reps,
                    "flagged": k / reps,
                    "ci": wilson(k, reps),
                    "flagged_margin_0": flagged["strict"] / reps,
                    "ci_margin_0": wilson(flagged["strict"], reps),
                    "gate_pass": verdict_pass / reps,
                    "gate_pass_ci": wilson(verdict_pass, reps),
                    "gate_pass_previous_rule": all_pass / reps,
                    "pass_needs_median": float(np.median(needs)) if needs else None,
                    "pass_reachable": len(needs) / reps,
                    "released": {c: v / reps for c, v in sorted(released.items())},
                    "failed_checks": {c: v / reps for c, v in sorted(reasons.items())},
                }
            )
            print(
                f"{name:<16} n={n:<3} flagged {k / reps:.3f} (margin 0: "
                f"{flagged['strict'] / reps:.3f}) pass {verdict_pass / reps:.3f}  "
                f"{dict(reasons)}",
                flush=True,
            )
    return {
        "alpha": ALPHA,
        "settings": default.as_dict(),
        "pools": {
            p.name: {
                "per_prompt": p.per_prompt,
                "model": p.model,
                "temperature": p.temperature,
                "prefix": p.prefix,
            }
            for p in POOLS
        },
        "prompts": len(PROMPTS),
        "max_tokens": MAX_TOKENS,
        "embed_s": embed_s,
        "took_s": time.monotonic() - started,
        "rows": rows,
    }


def markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        "# Migration gate: false-positive rate, power and PASS rate vs replayed requests",
        "",
        f"Reproduce (pools first: `flock /tmp/turnout-bench.lock .venv/bin/python "
        f"bench/migrate/pools.py`): `{command}`",
        "",
        f"{result['prompts']} text-completion prompts, max_tokens {result['max_tokens']}; answers "
        "generated through turnout's embedded backend. Old model: SmolLM2-135M at temperature 0.7; "
        "each resampled replay draws, per prompt, three distinct SmolLM2 answers (the recorded "
        "one, the old model's rerun, and — for `null` — the candidate) or takes the candidate from "
        "a scenario's pool: `null-same` (the candidate answers exactly as the old model's rerun: "
        "a same-model candidate replayed with the same `--seed`), `gemma` (Gemma 3 270M), "
        "`prompt-prefix` (SmolLM2 behind an added instruction prefix, the text-completion "
        "analogue of a changed system prompt), `temperature-1.0` (SmolLM2 sampled at 1.0 instead "
        "of 0.7). Every run goes through the real diff (MiniLM similarity, threshold calibrated "
        "on old-vs-old, echoes of the prompt never matching) and gate.",
        "",
        f"Gate: weighted Holm at family-wise α = {result['alpha']}; `flagged` with the default "
        f"margins (pass rates −{result['settings']['margin']}, latency "
        f"+{result['settings']['latency_margin']:.0%}, length ±"
        f"{result['settings']['length_margin']:.0%}); `margin 0` with a zero pass-rate margin "
        "(exact McNemar per check). For the nulls `flagged` is the false-positive rate. `PASS` is "
        "the revised rule (a check that applies to only part of the replay and has too few pairs "
        "to decide is reported and not counted); `PASS, previous rule` requires every check to "
        "pass. `PASS needs`: the median over runs of the gate's own estimate of the requests a "
        "PASS needs at the observed rates (over the runs where the rates allow one at all). "
        "CI: Wilson 95%.",
        "",
        "| scenario | requests | runs | flagged | 95% CI | flagged, margin 0 | PASS | 95% CI | "
        "PASS, previous rule | PASS needs (median) | failed checks (share of runs) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        checks = ", ".join(f"{c} {v:.2f}" for c, v in r["failed_checks"].items()) or "-"
        need = r["pass_needs_median"]
        need_s = "-" if need is None else f"{need:.0f} ({r['pass_reachable']:.0%} of runs)"
        lines.append(
            f"| {r['scenario']} | {r['requests']} | {r['runs']} | **{r['flagged']:.3f}** | "
            f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {r['flagged_margin_0']:.3f} | "
            f"**{r['gate_pass']:.3f}** | [{r['gate_pass_ci'][0]:.3f}, {r['gate_pass_ci'][1]:.3f}] "
            f"| {r['gate_pass_previous_rule']:.3f} | {need_s} | {checks} |"
        )
    nulls = [r for r in result["rows"] if r["scenario"] in NULLS]
    worst = max(nulls, key=lambda r: r["flagged_margin_0"])
    verdict = "met" if all(r["flagged_margin_0"] <= result["alpha"] for r in nulls) else "MISSED"
    lines += [
        "",
        f"Target FPR ≤ α on null migrations: **{verdict}** (highest, with margin 0: "
        f"{worst['flagged_margin_0']:.3f} at {worst['requests']} requests; with the default "
        f"margins: {max(r['flagged'] for r in nulls):.3f}).",
        "",
        "Latency here is each pool answer's generation time, taken while the pool was "
        "generated; pools generated under different load on the machine are not comparable on "
        "latency, so read the latency column's power (and its absence) with that in mind: the "
        "other checks compare what the answers say.",
        "",
        f"Embedding every pool text once took {result['embed_s']:.0f} s; all runs "
        f"{result['took_s']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for name in SCENARIOS:
        rows = [r for r in result["rows"] if r["scenario"] == name]
        sizes = [r["requests"] for r in rows]
        ax.plot(sizes, [r["flagged"] for r in rows], marker="o", label=name)
        ax2.plot(sizes, [r["gate_pass"] for r in rows], marker="o", label=name)
    ax.axhline(result["alpha"], color="grey", ls="--", lw=1, label=f"α = {result['alpha']}")
    for a in (ax, ax2):
        a.set_xlabel("replayed requests")
        a.set_ylim(-0.02, 1.02)
    ax.set_ylabel("share of runs flagged (FAIL)")
    ax.set_title("FAIL: power and false-positive rate")
    ax2.set_ylabel("share of runs that PASS")
    ax2.set_title("PASS")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--null-reps", type=int, default=400)
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 40, 60, 80])
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if not POOL.exists():
        raise SystemExit("no pools yet: run bench/migrate/pools.py first")
    result = run(args)
    command = COMMAND.format(
        reps=args.reps, null_reps=args.null_reps, sizes=" ".join(map(str, args.sizes))
    )
    result["command"] = command
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "migrate_gate.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "migrate_gate.md").write_text(markdown(result, command))
    plot(result, RESULTS / "migrate_gate.png")
    print(markdown(result, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
