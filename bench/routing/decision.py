"""Routing decision overhead, privacy scan included: p50/p99 per prompt size.

Reproduce: flock /tmp/turnout-bench.lock .venv/bin/python bench/routing/decision.py
Writes bench/results/routing_decision.md and .json.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

from turnout.config import parse_config
from turnout.gateway import Gateway

CONFIG = """
deployments:
  edge: {kind: embedded, model: smollm2-135m, tags: [local], hourly_usd: 0.5}
  cloud: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m, tags: [cloud],
          price: {input_per_mtok: 0.15, output_per_mtok: 0.6}}
models:
  smart: {deployments: [cloud, edge], routing: policy, privacy: block}
"""
FILLER = "The quarterly report covers order 88213-77 shipped on 2026-03-14 at 10:32. "
PII = " Reach me at jane.doe@example.com or card 4111 1111 1111 1111."
N = 3000


def prompt(chars: int, pii: bool) -> str:
    text = (FILLER * (chars // len(FILLER) + 1))[: chars - (len(PII) if pii else 0)]
    return text + (PII if pii else "")


def measure(gw: Gateway, chars: int, pii: bool) -> dict[str, float]:
    model = gw.models["smart"]
    body = {
        "model": "smart",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": prompt(chars, pii)}],
    }
    headers = {"x-turnout-latency-budget-ms": "800"}
    times = []
    for i in range(N + 200):
        t0 = time.perf_counter()
        req = gw.router.features(model, body, headers)
        gw.router.plan(model, req)
        if i >= 200:
            times.append((time.perf_counter() - t0) * 1e6)
    times.sort()
    return {
        "chars": chars,
        "pii": pii,
        "p50_us": statistics.median(times),
        "p99_us": times[int(0.99 * len(times))],
        "max_us": times[-1],
    }


def main() -> None:
    gw = Gateway(parse_config(CONFIG, "bench"))
    rows = [measure(gw, c, p) for c in (200, 2048, 8000) for p in (False, True)]
    out = Path(__file__).resolve().parents[1] / "results"
    (out / "routing_decision.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "# Routing decision overhead (features + privacy scan + decide)",
        "",
        "Reproduce: `flock /tmp/turnout-bench.lock .venv/bin/python bench/routing/decision.py`",
        "",
        f"{platform.machine()}, Python {platform.python_version()}; {N} decisions per row, "
        "2 candidates (cloud, edge), `routing: policy`, `privacy: block`, latency budget set. "
        "Target (issue 3): p50 ≤ 200 µs and p99 ≤ 1 ms for 2 KB.",
        "",
        "| prompt chars | PII | p50 µs | p99 µs | max µs |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['chars']} | {'yes' if r['pii'] else 'no'} | {r['p50_us']:.1f} | "
        f"{r['p99_us']:.1f} | {r['max_us']:.1f} |"
        for r in rows
    ]
    (out / "routing_decision.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
