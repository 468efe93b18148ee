"""`turnout sim` and `turnout emulate`: registered by the CLI's extension list."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from turnout.emulate import cli as emulate_cli
from turnout.sim.fleet import SIM_STRATEGIES
from turnout.sim.report import Slo
from turnout.sim.sweep import Sweep, Variant, aggregate, table
from turnout.sim.timing import PRESETS, preset
from turnout.sim.workload import WORKLOADS, read_trace, workload


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def cmd_sim(args: argparse.Namespace) -> int:
    names = args.preset.split(",")
    profiles = [preset(n) for n in names]
    if len(profiles) == 1:
        profiles = profiles * args.instances
    variants = [Variant(s) for s in args.strategies.split(",")]
    if args.affinity:
        variants.append(Variant("least_work", affinity=True))
    for s in variants:
        if s.strategy not in SIM_STRATEGIES:
            raise SystemExit(f"turnout sim: unknown strategy {s.strategy!r}")
    sweep = Sweep(
        profiles,
        workload(args.workload),
        _floats(args.load),
        variants,
        [int(x) for x in args.seeds.split(",")],
        args.requests,
        cv=args.cv,
        prefix_cache=args.prefix_cache,
        slo=Slo(args.slo_ttft_s, args.slo_tpot_ms / 1000),
        trace=read_trace(Path(args.trace)) if args.trace else None,
    )
    fleet = ", ".join(p.name for p in profiles)
    print(
        f"fleet: {fleet}; workload {args.workload}; capacity {sweep.capacity():.2f} req/s",
        file=sys.stderr,
    )
    rows = sweep.run(lambda line: print(line, file=sys.stderr, flush=True))
    aggs = aggregate(rows)
    print(table(aggs))
    if args.json:
        doc: dict[str, Any] = {
            "fleet": [p.name for p in profiles],
            "capacity_rps": sweep.capacity(),
            "rows": rows,
            "aggregate": aggs,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    if args.plot:
        plot(aggs, Path(args.plot))
    return 0


def plot(aggs: list[dict[str, Any]], out_dir: Path) -> None:
    """PNGs of p99 latency and p99 TTFT against load, one line per strategy."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("turnout sim: --plot needs matplotlib", file=sys.stderr)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for metric, label in (("latency_p99_s", "p99 latency (s)"), ("ttft_p99_s", "p99 TTFT (s)")):
        fig, ax = plt.subplots(figsize=(6, 4))
        for variant in sorted({a["variant"] for a in aggs}):
            pts = sorted((a["load"], a[metric]) for a in aggs if a["variant"] == variant)
            ax.plot([p[0] * 100 for p in pts], [p[1] for p in pts], marker="o", label=variant)
        ax.set_xlabel("load (% of fleet capacity)")
        ax.set_ylabel(label)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / f"{metric}.png", dpi=120)
        plt.close(fig)


def register(subparsers: Any) -> None:
    sim = subparsers.add_parser("sim", help="fleet simulator for load balancing")
    sim.add_argument(
        "--preset",
        default="dense-8b-h100",
        help=f"one preset for every instance, or one per instance, comma-separated "
        f"({', '.join(PRESETS)})",
    )
    sim.add_argument("--instances", type=int, default=4)
    sim.add_argument("--workload", default="mixed", choices=sorted(WORKLOADS))
    sim.add_argument("--trace", help="replay a JSON-lines trace instead of the workload")
    sim.add_argument("--load", default="0.5,0.7,0.9", help="fractions of fleet capacity")
    sim.add_argument("--requests", type=int, default=4000, help="per run")
    sim.add_argument("--seeds", default="1")
    sim.add_argument("--strategies", default=",".join(SIM_STRATEGIES))
    sim.add_argument("--affinity", action="store_true", help="also least_work with affinity")
    sim.add_argument(
        "--cv",
        type=float,
        default=1.0,
        help="inter-arrival coefficient of variation: 1 Poisson, >1 bursty Gamma",
    )
    sim.add_argument("--prefix-cache", type=int, default=16, help="prefixes each instance keeps")
    sim.add_argument("--slo-ttft-s", type=float, default=2.0)
    sim.add_argument("--slo-tpot-ms", type=float, default=100.0)
    sim.add_argument("--json", help="write every run and the aggregate here")
    sim.add_argument("--plot", help="write PNGs (latency vs load per strategy) to this folder")
    sim.set_defaults(func=cmd_sim)

    emulate = subparsers.add_parser("emulate", help="an emulated inference server")
    emulate_cli.add_arguments(emulate)
    emulate.set_defaults(func=emulate_cli.run)
