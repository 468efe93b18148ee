"""Arguments of `turnout emulate` (also `python -m turnout.emulate`)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from turnout.sim.timing import PRESETS, Profile, preset


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--preset", default="cpu-small", choices=sorted(PRESETS))
    p.add_argument(
        "--scale", type=float, default=1.0, help="multiply every duration (slower than real)"
    )
    p.add_argument("--prefill-tps", type=float, help="prompt tokens per second")
    p.add_argument("--step-base-ms", type=float, help="decode step at batch 1, ms")
    p.add_argument("--step-per-seq-ms", type=float, help="decode step added per request, ms")
    p.add_argument("--step-per-kv-us", type=float, help="decode step added per KV token, µs")
    p.add_argument("--max-batch", type=int, help="requests decoding at once")
    p.add_argument("--kv-tokens", type=int, help="KV cache capacity, tokens")
    p.add_argument("--model", default="emulated", help="the model name it answers as")
    p.add_argument("--seed", type=int, default=0, help="seeds the output-length draws")
    p.add_argument("--output-median", type=float, default=200.0)
    p.add_argument("--output-sigma", type=float, default=1.0)


def profile_of(args: argparse.Namespace) -> Profile:
    prof = preset(args.preset)
    if args.scale != 1.0:
        prof = prof.scaled(args.scale)
    changes: dict[str, float | int] = {}
    if args.prefill_tps is not None:
        changes["prefill_tps"] = args.prefill_tps
    if args.step_base_ms is not None:
        changes["step_base_s"] = args.step_base_ms / 1000
    if args.step_per_seq_ms is not None:
        changes["step_per_seq_s"] = args.step_per_seq_ms / 1000
    if args.step_per_kv_us is not None:
        changes["step_per_kv_s"] = args.step_per_kv_us / 1e6
    if args.max_batch is not None:
        changes["max_batch"] = args.max_batch
    if args.kv_tokens is not None:
        changes["kv_tokens"] = args.kv_tokens
    return replace(prof, **changes) if changes else prof  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    from turnout.emulate.server import EmulatorConfig, serve

    prof = profile_of(args)
    print(
        f"turnout emulate: {args.model} on http://{args.host}:{args.port}/v1 — {prof.name}, "
        f"prefill {prof.prefill_tps:.0f} tok/s, step {prof.step_s(1) * 1000:.1f} ms at batch 1, "
        f"{prof.step_s(prof.max_batch) * 1000:.1f} ms at {prof.max_batch}, "
        f"KV {prof.kv_tokens} tokens",
        flush=True,
    )
    serve(
        EmulatorConfig(prof, args.model, args.seed, args.output_median, args.output_sigma),
        args.host,
        args.port,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="turnout emulate", description=__doc__)
    add_arguments(p)
    return run(p.parse_args(argv))
