"""Live balancing, every strategy side by side: `live.py` once per (load, strategy), then one table.

Each point is a fresh set of `turnout emulate` processes (2 dense + 2 MoE presets, slowed ×4 so
that Python keeps real time on two cores) and, for the gateway's strategies, a fresh
`turnout serve` in front of them. The oracle is least_work told every answer's true length; no
client can tell the gateway that, so it balances client-side with the gateway's own code
(`live.py --direct oracle`), next to least_work balanced the same way for a like-for-like pair.
Results: bench/results/balance_live_gateway.md (and one file per point).

    flock /tmp/turnout-bench.lock .venv/bin/python bench/balance/live_sweep.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
PRESET = "dense-8b-h100,dense-8b-h100,moe-h100,moe-h100"
POINTS = (
    ("serve", "round_robin"),
    ("serve", "least_requests"),
    ("serve", "least_work"),
    ("direct", "least_work"),
    ("direct", "oracle"),
)


def label(mode: str, strategy: str, load: float) -> str:
    where = "gateway" if mode == "serve" else "direct"
    return f"{where}_{strategy}_mixed4x_{round(load * 100)}"


def run_point(mode: str, strategy: str, load: float, requests: int, scale: float) -> None:
    cmd = [
        sys.executable,
        str(REPO / "bench" / "balance" / "live.py"),
        "--preset",
        PRESET,
        "--scale",
        str(scale),
        f"--{mode}",
        strategy,
        "--load",
        str(load),
        "--requests",
        str(requests),
        "--label",
        label(mode, strategy, load),
    ]
    print("+", " ".join(cmd[1:]), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def table(loads: list[float], command: str) -> list[str]:
    rows = [
        "| load | strategy | p50 s | p90 s | p99 s | p99 TTFT s | requests per instance "
        "(dense, dense, MoE, MoE) | completed | shed (503) | failed | took s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for load in loads:
        p99: dict[tuple[str, str], float] = {}
        for mode, strategy in POINTS:
            d = _load(RESULTS / f"balance_live_{label(mode, strategy, load)}.json")
            if d is None:
                continue
            p99[(mode, strategy)] = d["latency_p99_s"]
            per = d["per_instance"]
            spread = ", ".join(str(per.get(f"gpu-{k}", 0)) for k in range(1, 5))
            rows.append(
                f"| {load:.0%} | {strategy}{' (client-side)' if mode == 'direct' else ''} "
                f"| {d['latency_p50_s']:.1f} | {d['latency_p90_s']:.1f} "
                f"| {d['latency_p99_s']:.1f} | {d['ttft_p99_s']:.2f} | {spread} "
                f"| {d['completed']} | {d['shed_503']} | {d['failed']} | {d['took_s']:.0f} |"
            )
        gw = {s: p for (m, s), p in p99.items() if m == "serve"}
        if {"least_work", "round_robin", "least_requests"} <= gw.keys():
            lw = gw["least_work"]
            line = (
                f"- {load:.0%}: least_work p99 {1 - lw / gw['round_robin']:+.0%} lower than "
                f"round_robin, {1 - lw / gw['least_requests']:+.0%} lower than least_requests"
            )
            pair = p99.get(("direct", "least_work")), p99.get(("direct", "oracle"))
            if pair[0] is not None and pair[1] is not None:
                line += f"; client-side least_work {pair[0] / pair[1] - 1:+.0%} vs the oracle"
            verdicts.append(line)
    return [
        "# Live balancing through the gateway: 4 × `turnout emulate` (2 dense + 2 MoE, "
        "×4 slower than the H100 presets)",
        "",
        f"Reproduce: `{command}`",
        "",
        "Each point: fresh emulators, and for the gateway's strategies a fresh `turnout serve` "
        "(one process, `routing: balanced`, default scrape of every emulator's `/metrics` each "
        "second); the oracle balances client-side with the same code, told each answer's true "
        "length. 1,000 streamed requests of the simulator's mixed workload per point, open-loop "
        "Poisson at the given fraction of the fleet's capacity; the first 10% left out as "
        "warm-up, so p99 rests on ~9 requests: one seed, read it as direction. Emulators, "
        "gateway and load generator share two cores. Requests of the JSON families get words "
        "from the emulator, which the gateway's validation flags after the whole answer has "
        "streamed; they count as completed (their latency is the full answer's). Nothing is "
        "shed (no caps or deadlines configured); failed counts broken streams and errors.",
        "",
        *rows,
        "",
        "p99 latency, least_work against the others:",
        "",
        *verdicts,
        "",
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loads", default="0.7,0.9")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--table-only", action="store_true", help="rebuild the table from results")
    args = ap.parse_args()
    loads = [float(x) for x in args.loads.split(",")]
    if not args.table_only:
        for load in loads:
            for mode, strategy in POINTS:
                run_point(mode, strategy, load, args.requests, args.scale)
    command = "flock /tmp/turnout-bench.lock .venv/bin/python bench/balance/live_sweep.py"
    if args.loads != "0.7,0.9":
        command += f" --loads {args.loads}"
    md = table(loads, command)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "balance_live_gateway.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
