"""Translation cost of each wire format: its added latency over chat completions.

Starts the fast loopback upstream (bench/upstream.py) and one `turnout serve` in front of it,
then sends the same one-turn question as chat completions and as every other wire format the
gateway serves, sequentially and interleaved (round-robin per request, after a warm-up), JSON
and streamed. The number that matters is the difference of medians against chat completions on
the same gateway and upstream: the cost of parsing and rendering the format at the edge (and,
for Responses, the bookkeeping of the record it keeps).

Formats: chat completions, Responses (`/v1/responses`), and Anthropic Messages (`/v1/messages`)
when the gateway serves it (probed; otherwise reported as not served).

Run (with nothing else heavy on the machine):
    flock /tmp/turnout-bench.lock python bench/wire/translation.py --requests 400
Results: bench/results/wire_translation.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parents[1]
RESULTS = BENCH / "results"
QUESTION = "What is the capital of France?"

# Each wire format: (path, body builder for stream on/off, extra headers).
Body = Callable[[bool], dict[str, Any]]
WIRES: dict[str, tuple[str, Body, dict[str, str]]] = {
    "chat.completions": (
        "/v1/chat/completions",
        lambda s: {"model": "bench", "messages": [{"role": "user", "content": QUESTION}],
                   "max_tokens": 32, "stream": s},
        {},
    ),
    "responses": (
        "/v1/responses",
        lambda s: {"model": "bench", "input": QUESTION, "max_output_tokens": 32, "stream": s},
        {},
    ),
    # The hook for the Messages API: measured when the gateway serves it.
    "messages": (
        "/v1/messages",
        lambda s: {"model": "bench", "max_tokens": 32, "stream": s,
                   "messages": [{"role": "user", "content": QUESTION}]},
        {"anthropic-version": "2023-06-01"},
    ),
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def one(client: httpx.Client, wire: str, stream: bool) -> float:
    path, body, headers = WIRES[wire]
    t0 = time.perf_counter()
    if stream:
        with client.stream("POST", path, json=body(True), headers=headers) as r:
            for _ in r.iter_raw():
                pass
            ok = r.status_code == 200
    else:
        r = client.post(path, json=body(False), headers=headers)
        ok = r.status_code == 200
    took = time.perf_counter() - t0
    if not ok:
        raise RuntimeError(f"{wire} answered {r.status_code}")
    return took


def served(client: httpx.Client, wire: str) -> bool:
    path, body, headers = WIRES[wire]
    return client.post(path, json=body(False), headers=headers).status_code == 200


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400, help="per format and mode")
    ap.add_argument("--warmup", type=int, default=50)
    args = ap.parse_args(argv)
    up_port, gw_port = free_port(), free_port()
    work = Path(tempfile.mkdtemp(prefix="turnout-wire-bench-"))
    config = work / "turnout.yaml"
    config.write_text(
        f"""
deployments:
  up: {{kind: openai, base_url: "http://127.0.0.1:{up_port}/v1", model: m, rtt_probe_s: 0}}
models:
  bench: {{deployments: [up]}}
store: {{url: "sqlite:///{work}/turnout.db"}}
"""
    )
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [sys.executable, str(BENCH / "upstream.py"), "--port", str(up_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "turnout", "serve", "--config", str(config),
             "--port", str(gw_port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    try:
        wait_up(f"http://127.0.0.1:{up_port}/health")
        wait_up(f"http://127.0.0.1:{gw_port}/healthz")
        client = httpx.Client(base_url=f"http://127.0.0.1:{gw_port}", timeout=30)
        wires = [w for w in WIRES if served(client, w)]
        samples: dict[str, dict[str, list[float]]] = {w: {"json": [], "stream": []} for w in wires}
        for mode in ("json", "stream"):
            for _ in range(args.warmup):
                for w in wires:
                    one(client, w, mode == "stream")
            for _ in range(args.requests):
                for w in wires:  # interleaved: drift hits every format alike
                    samples[w][mode].append(one(client, w, mode == "stream"))
        client.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
    report(samples, [w for w in WIRES if w not in samples], args)
    return 0


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report(
    samples: dict[str, dict[str, list[float]]], absent: list[str], args: argparse.Namespace
) -> None:
    rows: list[dict[str, Any]] = []
    for wire, modes in samples.items():
        for mode, values in modes.items():
            base = samples["chat.completions"][mode]
            rows.append(
                {
                    "wire": wire,
                    "mode": mode,
                    "n": len(values),
                    "p50_ms": round(_ms(values, 0.5), 3),
                    "p90_ms": round(_ms(values, 0.9), 3),
                    "p99_ms": round(_ms(values, 0.99), 3),
                    "added_p50_ms": round(
                        (statistics.median(values) - statistics.median(base)) * 1000, 3
                    ),
                }
            )
    env = {"python": platform.python_version(), "machine": platform.machine(),
           "cpus": os.cpu_count(), "requests": args.requests, "warmup": args.warmup}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "wire_translation.json").write_text(
        json.dumps({"rows": rows, "not_served": absent, "env": env}, indent=2) + "\n"
    )
    lines = [
        "# Wire-format translation cost",
        "",
        "Sequential requests, interleaved across formats, through one `turnout serve` in front",
        "of the loopback upstream (`bench/upstream.py`); `added p50` is the format's median",
        "minus chat completions' median in the same mode (streamed: to the last byte).",
        "",
        "| format | mode | n | p50 ms | p90 ms | p99 ms | added p50 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['wire']} | {r['mode']} | {r['n']} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} "
            f"| {r['p99_ms']:.3f} | {r['added_p50_ms']:+.3f} |"
        )
    if absent:
        lines += ["", f"Not served by this gateway (not measured): {', '.join(absent)}."]
    lines += ["", f"Environment: {env}", ""]
    (RESULTS / "wire_translation.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
