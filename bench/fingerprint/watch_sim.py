"""Watch mode replayed: how many check cycles pass between a silent change and the alarm.

The real Watcher (probe runner, store, compare, the two-in-a-row alarm) runs against a replay
backend that answers every probe from the cached pools (bench/fingerprint/pools.py): SmolLM2
until the change, then the changed behaviour. The change happens at a uniformly random moment
between two checks. Also: false alarms over a long run without any change.

    flock /tmp/turnout-bench.lock .venv/bin/python bench/fingerprint/watch_sim.py

Writes bench/results/fingerprint_watch.{md,json,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pools import POOLS_DB, load_pool
from power import disguised

from turnout.backends.base import Completion, StreamChunk, UpstreamRequest, Usage
from turnout.fingerprint.samples import ProbeRun, Sample
from turnout.fingerprint.settings import WatchSettings, WatchTarget
from turnout.fingerprint.store import FingerprintStore
from turnout.fingerprint.suite import builtin_suite
from turnout.fingerprint.watch import Watcher

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
Pool = dict[str, list[Sample]]


class ReplayBackend:
    """Answers each probe with a pool sample not yet used in this cycle (nor in the baseline)."""

    name = "edge"
    model_name = "smollm2-135m"

    def __init__(self, pools: dict[str, Pool], rng: random.Random) -> None:
        self.pools = pools
        self.rng = rng
        self.source = "smollm2"
        self.share = 1.0  # of requests answered from `source` once it is not smollm2
        self.exclude: set[int] = set()  # ids of baseline samples
        self._queues: dict[tuple[str, str], list[Sample]] = {}
        self._by_prompt = {p.prompt: p.id for p in builtin_suite().probes}

    def new_cycle(self) -> None:
        self._queues = {}

    def _next(self, source: str, probe: str) -> Sample:
        key = (source, probe)
        if not self._queues.get(key):
            fresh = [s for s in self.pools[source][probe] if id(s) not in self.exclude]
            self.rng.shuffle(fresh)
            self._queues[key] = fresh
        return self._queues[key].pop()

    async def complete(self, request: UpstreamRequest) -> Completion:
        probe = self._by_prompt[request.body["prompt"]]
        changed = self.source != "smollm2" and self.rng.random() < self.share
        s = self._next(self.source if changed else "smollm2", probe)
        body = {
            "choices": [{"text": s.text, "finish_reason": s.finish_reason}],
            "model": "smollm2-135m",
            "usage": {"prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens},
        }
        return Completion(body, Usage(s.prompt_tokens, s.completion_tokens))

    def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamChunk]:
        raise NotImplementedError

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def ready(self) -> bool:
        return True


def baseline_run(pools: dict[str, Pool], per_probe: int, rng: random.Random) -> ProbeRun:
    suite = builtin_suite()
    samples = [s for p in suite.probes for s in rng.sample(pools["smollm2"][p.id], per_probe)]
    return ProbeRun("base", "edge", suite.name, suite.digest(), 0.0, samples=samples)


async def trial(
    pools: dict[str, Pool], source: str, share: float, samples: int, seed: int, max_after: int
) -> dict[str, float | int | None]:
    rng = random.Random(seed)
    replay = ReplayBackend(pools, rng)
    base = baseline_run(pools, 20, rng)
    replay.exclude = {id(s) for s in base.samples}
    swap_before = rng.randint(2, 5)  # the change comes before this check…
    offset = rng.random()  # …at this fraction of the cycle before it
    with tempfile.TemporaryDirectory() as tmp:
        store = FingerprintStore(Path(tmp) / "fp.db")
        store.save_run(base)
        store.set_baseline("edge", base.id, "edge")
        target = WatchTarget("edge", "edge", samples=samples)
        watcher = Watcher(WatchSettings(targets=(target,)), backends={"edge": replay}, store=store)
        alarm_at, false_alarms = None, 0
        for check in range(1, swap_before + max_after):
            if check == swap_before:
                replay.source, replay.share = source, share
            replay.new_cycle()
            await watcher.check("edge")
            if watcher.streaks["edge"].alarmed and alarm_at is None:
                if check < swap_before:
                    false_alarms += 1
                    watcher.streaks["edge"].alarmed = False
                    watcher.streaks["edge"].count = 0
                else:
                    alarm_at = check
                    break
        store.close()
    if alarm_at is None:
        return {"cycles": None, "checks": None, "false_alarms": false_alarms}
    swapped_at = swap_before - 1 + offset
    return {
        "cycles": alarm_at - swapped_at,
        "checks": alarm_at - swap_before + 1,
        "false_alarms": false_alarms,
    }


async def null_run(pools: dict[str, Pool], samples: int, cycles: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    replay = ReplayBackend(pools, rng)
    base = baseline_run(pools, 20, rng)
    replay.exclude = {id(s) for s in base.samples}
    with tempfile.TemporaryDirectory() as tmp:
        store = FingerprintStore(Path(tmp) / "fp.db")
        store.save_run(base)
        store.set_baseline("edge", base.id, "edge")
        target = WatchTarget("edge", "edge", samples=samples)
        alarms: list[object] = []
        watcher = Watcher(
            WatchSettings(targets=(target,)),
            backends={"edge": replay},
            store=store,
            on_alarm=alarms.append,
        )
        rejections = 0
        for _ in range(cycles):
            replay.new_cycle()
            check = await watcher.check("edge")
            rejections += bool(check and check.changed)
        raised = sum(getattr(a, "kind", "") == "raised" for a in alarms)
        store.close()
    return {"cycles": cycles, "rejections": rejections, "alarms": raised}


SCENARIOS = (
    ("swap", "gemma", 1.0, 50),
    ("partial-0.5", "gemma", 0.5, 50),
    ("prefix", "smollm2-prefix", 1.0, 250),
    ("temperature", "smollm2-t0.7", 1.0, 250),
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--null-cycles", type=int, default=150)
    args = p.parse_args()
    logging.getLogger("turnout.fingerprint").setLevel(logging.ERROR)  # one line per alarm
    with FingerprintStore(POOLS_DB) as store:
        pools = {
            n: disguised(load_pool(store, n))
            for n in ("smollm2", "gemma", "smollm2-prefix", "smollm2-t0.7")
        }
    rows, data = [], {}
    started = time.monotonic()
    for name, source, share, samples in SCENARIOS:
        results = [
            asyncio.run(trial(pools, source, share, samples, seed=1000 + i, max_after=8))
            for i in range(args.trials)
        ]
        cycles = [r["cycles"] for r in results if r["cycles"] is not None]
        checks = [r["checks"] for r in results if r["checks"] is not None]
        missed = sum(r["cycles"] is None for r in results)
        med = statistics.median(cycles) if cycles else float("nan")
        med_checks = statistics.median(checks) if checks else float("nan")
        p90 = sorted(cycles)[math.ceil(0.9 * len(cycles)) - 1] if cycles else float("nan")
        false = sum(int(r["false_alarms"] or 0) for r in results)
        data[name] = {
            "samples_per_check": samples,
            "trials": args.trials,
            "cycles": cycles,
            "checks": checks,
            "missed_within_8": missed,
            "false_alarms_before": false,
        }
        rows.append(
            f"| {name} | {samples} | {args.trials} | **{med:.2f}** | {p90:.2f} | "
            f"{med_checks:g} | {missed} | {false} |"
        )
        print(
            f"{name:<12} per check {samples:>3}: median {med:.2f} cycles (p90 {p90:.2f}), "
            f"median {med_checks:g} checks after the change, missed {missed}, "
            f"false alarms before it {false} ({time.monotonic() - started:.0f} s)",
            flush=True,
        )
    null = asyncio.run(null_run(pools, 50, args.null_cycles, seed=7))
    data["null"] = null
    print(f"null: {null}", flush=True)
    write(rows, data, null, args)
    return 0


def write(
    rows: list[str], data: Mapping[str, object], null: dict[str, int], args: argparse.Namespace
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = "flock /tmp/turnout-bench.lock .venv/bin/python bench/fingerprint/watch_sim.py"
    md = [
        "# Fingerprint watch: time to alarm after a silent change (replayed)",
        "",
        f"Reproduce (pools first, see fingerprint_power.md): `{command}`",
        "",
        "The real Watcher runs scheduled checks against a 500-completion baseline; a replay backend"
        " answers from the cached pools (SmolLM2-135M, then the changed behaviour, under the same "
        "model name). The change happens at a uniformly random moment before check 2–5; the alarm"
        " needs two rejections in a row at α = 0.05 per check. Time is in check cycles from the "
        "moment of the change (so the best possible, two checks, is 1–2 cycles).",
        "",
        "| change | completions per check | trials | median cycles to alarm | p90 | "
        "median checks after the change | not alarmed within 8 checks | false alarms before it |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"No change at all, {null['cycles']} cycles of 50 completions: {null['rejections']} checks "
        f"rejected ({null['rejections'] / null['cycles']:.3f} per check), {null['alarms']} alarms "
        "raised. One baseline serves the whole no-change run and every check draws from the same "
        "20 spare completions per probe, so the checks are strongly correlated: the per-check "
        "rate here is that of one baseline, not the average over baselines that α bounds (see "
        "fingerprint_power.md), and false alarms come more often than α² would say.",
        "",
        "![cycles to alarm](fingerprint_watch.png)",
    ]
    (RESULTS / "fingerprint_watch.md").write_text("\n".join(md) + "\n")
    (RESULTS / "fingerprint_watch.json").write_text(
        json.dumps({"command": command, **data}, indent=2) + "\n"
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    names = [n for n, *_ in SCENARIOS]
    ax.boxplot([data[n]["cycles"] or [float("nan")] for n in names])  # type: ignore[index]
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.axhline(2, color="grey", ls="--", lw=1, label="target: median ≤ 2 cycles")
    ax.set_ylabel("cycles from the change to the alarm")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "fingerprint_watch.png")
    plt.close(fig)
    print(f"wrote {RESULTS / 'fingerprint_watch.md'}")


if __name__ == "__main__":
    sys.exit(main())
