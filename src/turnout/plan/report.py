"""How a plan reads: a table for people, a dict for `--json`, and a PNG of cost per million
tokens against utilisation with the cloud price for comparison."""

from __future__ import annotations

import math
from pathlib import Path

from turnout.plan.capacity import Plan

UTILISATIONS = (0.05, 0.10, 0.25, 0.50, 0.75, 1.00)


def _bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


def _kib(n: float) -> str:
    return f"{n / 1024:,.1f} KiB" if n < 1024**2 else f"{n / 1024**2:,.1f} MiB"


def _usd(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"${x:,.3f}" if x < 10 else f"${x:,.2f}"


def _precision(bytes_per: float) -> str:
    return {2.0: "16-bit", 1.0: "8-bit", 0.5: "4-bit"}.get(bytes_per, f"{bytes_per:g} B")


def render(p: Plan) -> str:
    m, t = p.model, p.traffic
    lines = [
        f"{m.name} on {p.count} × {p.hardware.name} (${p.hourly_usd:,.2f}/h)",
        f"traffic: {t.requests_per_s:g} req/s, {t.input_tokens:g} input + {t.output_tokens:g}"
        f" output tokens per request (p95 {t.p95_tokens_per_request:g} in all)",
        "",
    ]
    rows: list[tuple[str, str]] = []
    resident = f", all {m.experts} experts resident" if m.is_moe else ""
    kv_form = "MLA latent" if m.attention == "mla" else f"{m.kv_heads} KV heads"
    rows += [
        ("memory", ""),
        ("  weights", f"{_bytes(p.weight_bytes)} ({_precision(m.bytes_per_weight)}{resident})"),
        ("  KV cache per token", f"{_kib(p.kv_bytes_per_token)} ({kv_form}, "
                                 f"{_precision(m.bytes_per_kv)})"),
        ("  KV cache per sequence", f"{_kib(p.kv_bytes_per_sequence)} ({t.tokens_per_request:g}"
                                    " tokens)"),
        ("  sequences that fit", f"{p.max_concurrency:,} (mean length), "
                                 f"{p.max_concurrency_p95:,} (p95 length)"),
        ("  accelerators needed", f"at least {p.min_accelerators} × {p.hardware.name}"),
    ]  # fmt: skip
    if p.fits:
        touched = (
            f"; {p.experts_touched:.2f} of {m.experts} experts read per layer"
            if p.experts_touched is not None
            else ""
        )
        rows += [
            ("throughput", ""),
            ("  decode, one sequence", f"{p.decode_tokens_per_s_single:,.0f} tokens/s"),
            (f"  decode, batch {p.batch}", f"{p.decode_tokens_per_s:,.0f} tokens/s in all, "
             f"{p.decode_per_sequence_tokens_per_s:,.1f} per sequence ({p.decode_bound}-bound"
             f"{touched})"),
            ("  prefill", f"{p.prefill_tokens_per_s:,.0f} tokens/s (time to first token ≈ "
             f"{p.ttft_s * 1000:,.0f} ms, idle)"),
            ("  capacity per replica", f"{p.capacity_requests_per_s:,.2f} req/s = "
             f"{p.capacity_tokens_per_s:,.0f} tokens/s"),
            ("cost", ""),
            (f"  replicas for {t.requests_per_s:g} req/s", f"{p.replicas} at "
             f"{p.utilisation:.0%} utilisation → {_usd(p.cost_per_mtok_at_traffic)} per Mtok"),
        ]  # fmt: skip
        for u in UTILISATIONS:
            rows.append((f"  $/Mtok at {u:.0%} busy", _usd(p.cost_per_mtok(u))))
        if p.cloud_per_mtok is not None:
            rows.append(("  cloud, this traffic's mix", f"{_usd(p.cloud_per_mtok)} per Mtok"))
            be = p.break_even_utilisation
            verdict = (
                "never (costs more even fully busy)"
                if be is None or be > 1
                else f"{be:.0%}: busier than this, self-hosting is cheaper"
            )
            rows.append(("  break-even utilisation", verdict))
    width = max(len(k) for k, _ in rows) + 2
    lines += [f"{k:<{width}}{v}".rstrip() for k, v in rows]
    if p.notes:
        lines += ["", *(f"note: {n}" for n in p.notes)]
    return "\n".join(lines)


def plot(p: Plan, path: str | Path) -> Path:
    """A PNG of self-hosted $/Mtok against utilisation, with the cloud price and break-even."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    path = Path(path)
    us = [i / 200 for i in range(4, 201)]
    costs = [p.cost_per_mtok(u) for u in us]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    label = f"{p.model.name} on {p.count} × {p.hardware.name} (${p.hourly_usd:,.2f}/h)"
    ax.plot([u * 100 for u in us], costs, label=label, color="#1f77b4", linewidth=2)
    cloud = p.cloud_per_mtok
    if cloud is not None:
        ax.axhline(cloud, color="#d62728", linestyle="--", label=f"cloud: ${cloud:,.3f}/Mtok")
        be = p.break_even_utilisation
        if be is not None and be <= 1:
            ax.axvline(be * 100, color="grey", linestyle=":", label=f"break-even: {be:.0%}")
    if 0 < p.utilisation <= 1:
        ax.plot([p.utilisation * 100], [p.cost_per_mtok_at_traffic], "o", color="black",
                label=f"at {p.traffic.requests_per_s:g} req/s: {p.utilisation:.0%}")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("utilisation (% of time at full throughput)")
    ax.set_ylabel("$ per million tokens (input + output)")
    ax.set_title("Self-hosting cost per million tokens vs utilisation")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
