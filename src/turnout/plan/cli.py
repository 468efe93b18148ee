"""`turnout plan`: capacity and cost planning for self-hosting, dense and MoE."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from typing import Any

import orjson
import yaml

from turnout.plan.capacity import Assumptions, CloudPrice, Traffic, min_accelerators, plan
from turnout.plan.hardware import GPUS, Hardware, gpu
from turnout.plan.models import MODELS, ModelFacts, model
from turnout.plan.report import plot, render


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plan",
        help="capacity and cost planning for self-hosting (dense and MoE)",
        description="What a model costs to self-host: memory, concurrency, decode and prefill "
        "throughput, cost per million tokens by utilisation, break-even against a cloud price.",
    )
    p.add_argument("--list", action="store_true", help="list the model and GPU presets")
    p.add_argument("--model", default="llama-3.1-8b", help=f"preset: {', '.join(MODELS)}")
    p.add_argument("--model-file", help="YAML with model facts (the fields of a preset)")
    p.add_argument("--gpu", default="h100-sxm", help=f"preset: {', '.join(GPUS)}")
    p.add_argument("--gpu-file", help="YAML with accelerator facts")
    p.add_argument(
        "--gpus", type=int, help="accelerators per replica (default: the fewest that fit)"
    )
    p.add_argument("--hourly-usd", type=float, help="price per accelerator-hour (overrides preset)")
    p.add_argument("--rps", type=float, default=1.0, help="requests per second")
    p.add_argument("--input-tokens", type=float, default=1000, help="mean prompt tokens")
    p.add_argument("--output-tokens", type=float, default=250, help="mean completion tokens")
    p.add_argument("--input-p95", type=float, help="p95 prompt tokens (KV sizing)")
    p.add_argument("--output-p95", type=float, help="p95 completion tokens (KV sizing)")
    p.add_argument("--cloud-input-price", type=float, help="cloud $ per Mtok of input")
    p.add_argument("--cloud-output-price", type=float, help="cloud $ per Mtok of output")
    p.add_argument("--bytes-per-weight", type=float, help="2 = bf16, 1 = fp8/int8, 0.5 = 4-bit")
    p.add_argument("--bytes-per-kv", type=float, help="KV cache bytes per element")
    defaults = Assumptions()
    p.add_argument("--memory-fraction", type=float, default=defaults.memory_fraction)
    p.add_argument("--bandwidth-efficiency", type=float, default=defaults.bandwidth_efficiency)
    p.add_argument("--compute-efficiency", type=float, default=defaults.compute_efficiency)
    p.add_argument("--max-batch", type=int, default=defaults.max_batch)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plot", metavar="PNG", help="write cost per Mtok vs utilisation here")
    p.set_defaults(func=cmd_plan)


def _load_facts(path: str, cls: type[Any]) -> Any:
    """A preset's fields from YAML, numbers written out (total_params: 46.7e9)."""
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError("expected a mapping of field names to values")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown fields {unknown}; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    # YAML reads "46.7e9" (no sign in the exponent) as a string; numbers are what is meant.
    for key, value in data.items():
        want = hints[key]
        if value is None or isinstance(value, bool):
            continue
        try:
            if want is int:
                data[key] = int(value)
            elif want is float or float in typing.get_args(want):
                data[key] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key}: expected a number, got {value!r}") from None
    return cls(**data)


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_plan(args: argparse.Namespace) -> int:
    if args.list:
        _print_presets()
        return 0
    try:
        m: ModelFacts = (
            _load_facts(args.model_file, ModelFacts) if args.model_file else model(args.model)
        )
        hw: Hardware = _load_facts(args.gpu_file, Hardware) if args.gpu_file else gpu(args.gpu)
    except (ValueError, TypeError) as exc:
        return _error(f"{args.model_file or args.gpu_file}: {exc}")
    m = m.with_precision(args.bytes_per_weight, args.bytes_per_kv)
    if args.rps < 0 or args.input_tokens < 0 or args.output_tokens <= 0:
        return _error("--rps and --input-tokens must be ≥ 0, --output-tokens > 0")
    if (args.cloud_input_price is None) != (args.cloud_output_price is None):
        return _error("give both --cloud-input-price and --cloud-output-price, or neither")
    traffic = Traffic(
        args.rps, args.input_tokens, args.output_tokens, args.input_p95, args.output_p95
    )
    assumptions = Assumptions(
        args.memory_fraction, args.bandwidth_efficiency, args.compute_efficiency, args.max_batch
    )
    cloud = (
        CloudPrice(args.cloud_input_price, args.cloud_output_price)
        if args.cloud_input_price is not None
        else None
    )
    count = args.gpus or min_accelerators(m, hw, traffic.p95_tokens_per_request, assumptions)
    result = plan(m, hw, traffic, count, cloud, assumptions, args.hourly_usd)
    if args.plot and result.fits:
        plot(result, args.plot)
    if args.json:
        sys.stdout.write(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        print(render(result))
        if args.plot:
            print(f"\nplot: {args.plot}" if result.fits else "\nno plot: the model does not fit")
    return 0


def _print_presets() -> None:
    print("models")
    for m in MODELS.values():
        moe = f", {m.experts} experts top-{m.experts_per_token}" if m.is_moe else ""
        print(
            f"  {m.name:<18} {m.total_params / 1e9:6.1f}B total, {m.active_params / 1e9:5.1f}B"
            f" active, {m.layers} layers{moe}, {m.attention.upper()}, "
            f"{m.bytes_per_weight:g} B/weight"
        )
    print("gpus (prices per hour are assumptions; override with --hourly-usd)")
    for g in GPUS.values():
        print(
            f"  {g.name:<10} {g.memory_bytes / 1e9:4.0f} GB, "
            f"{g.bandwidth_bytes_s / 1e9:5,.0f} GB/s, {g.bf16_flops / 1e12:4.0f} TFLOPS bf16, "
            f"${g.hourly_usd:.2f}/h"
        )
