"""`turnout plan` over every model preset on every GPU preset: how many accelerators each needs,
what it serves, and what a million tokens cost at a given utilisation. Deterministic (pure
arithmetic from published facts and the stated price assumptions), so this is a reference table
rather than a measurement. Results: bench/results/plan_presets.{md,json} and plan_mixtral.png.

    flock /tmp/turnout-bench.lock .venv/bin/python bench/plan/presets.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# The results writer is shared with bench/privacy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "privacy"))

import results

from turnout.plan import GPUS, MODELS, CloudPrice, Traffic, plan
from turnout.plan.capacity import Assumptions, min_accelerators
from turnout.plan.report import plot


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input-tokens", type=float, default=1000)
    p.add_argument("--output-tokens", type=float, default=250)
    p.add_argument("--reference-price", type=float, default=0.50,
                   help="a blended cloud $/Mtok to compute break-even against")  # fmt: skip
    args = p.parse_args()
    traffic = Traffic(1.0, args.input_tokens, args.output_tokens)
    cloud = CloudPrice(args.reference_price, args.reference_price)
    rows: list[list[Any]] = []
    data: list[dict[str, Any]] = []
    for m in MODELS.values():
        for hw in GPUS.values():
            count = min_accelerators(m, hw, traffic.tokens_per_request, Assumptions())
            if count > 8:
                rows.append([m.name, hw.name, f"{count} (> 8: skipped)"] + ["–"] * 6)
                continue
            pl = plan(m, hw, traffic, count, cloud)
            be = pl.break_even_utilisation
            row = [
                m.name, hw.name, count, pl.batch, f"{pl.decode_tokens_per_s:,.0f}",
                f"{pl.capacity_tokens_per_s:,.0f}", f"${pl.cost_per_mtok(1.0):.3f}",
                f"${pl.cost_per_mtok(0.5):.3f}",
                "never" if be is None or be > 1 else f"{be:.0%}",
            ]  # fmt: skip
            rows.append(row)
            print("  ".join(str(c) for c in row), flush=True)
            data.append(pl.to_dict())
    header = ["model", "gpu", "gpus", "batch", "decode tok/s", "capacity tok/s", "$/Mtok @100%",
              "$/Mtok @50%", f"break-even vs ${args.reference_price}/Mtok"]  # fmt: skip
    mixtral = plan(MODELS["mixtral-8x7b"], GPUS["h100-sxm"], Traffic(5, 1000, 300), 2,
                   CloudPrice(0.15, 0.60))  # fmt: skip
    plot(mixtral, results.RESULTS / "plan_mixtral.png")
    body = (
        f"Traffic shape: {args.input_tokens:g} input + {args.output_tokens:g} output tokens per"
        " request. Each pair uses the fewest accelerators that hold the weights and one"
        " sequence (scale out with more such replicas); where that leaves little memory for the"
        " KV cache, the batch and so the throughput are small (70B on 2 × H100: batch 6) and"
        " `turnout plan --gpus N` shows what more accelerators per replica buy; throughput is"
        " the roofline with the default assumptions (90% of memory"
        " usable, 80% of peak bandwidth in decode, 50% MFU in prefill, batches up to 256),"
        " assuming tensor/expert parallelism scales perfectly across the accelerators. Hourly"
        " prices are the presets' stated assumptions. `$/Mtok` counts input and output tokens."
        "\n\n"
        + results.table(header, rows)
        + "\n\nPlot (bench/results/plan_mixtral.png): Mixtral 8x7B on 2 × H100 SXM, 5 req/s of"
        " 1000 + 300 tokens, against a cloud price of $0.15 / $0.60 per Mtok in / out."
    )
    results.write("plan_presets", "turnout plan: presets side by side", body, {"plans": data})


if __name__ == "__main__":
    main()
