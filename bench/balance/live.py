"""Live balancing benchmark: real `turnout emulate` processes, real HTTP, real time.

Starts N emulated inference servers on loopback (or uses --targets), then sends open-loop
Poisson traffic (the simulator's "mixed" workload: system prompts per application, max_tokens
per family, heavy-tailed answers whose true length rides in the body's `emulate.output_tokens`)
at a fraction of the fleet's capacity, streaming every answer, and reports p50/p90/p99
end-to-end latency and TTFT, with 503s (shed) and other failures counted apart.

Three ways to balance:
  --serve S       through a turnout gateway this script starts (`turnout serve`, one process)
                  with `routing: balanced, balance: S` in front of the emulators;
  --gateway URL   through a running turnout gateway (e.g. http://127.0.0.1:8700/v1, --model
                  fleet): start it with the config this script prints (`--print-config`);
  --direct S      no gateway: this script balances itself with turnout's `LoadTracker` and
                  strategy S, calling it exactly where the gateway will (start, first token,
                  every token, finish) — a confirmation that needs no integration;
                  `--direct oracle` is least_work told every answer's true length.

Results: bench/results/balance_live_<label>.{md,json}. Run under the shared benchmark lock:

    flock /tmp/turnout-bench.lock .venv/bin/python bench/balance/live.py --serve least_work
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

import aiohttp  # noqa: E402

from turnout.routing.balance import Ask  # noqa: E402
from turnout.routing.length import FamilyQuantiles  # noqa: E402
from turnout.routing.tracker import LoadTracker  # noqa: E402
from turnout.sim.report import percentile  # noqa: E402
from turnout.sim.timing import preset  # noqa: E402
from turnout.sim.workload import SimRequest, capacity_rps, generate, workload  # noqa: E402

RESULTS = REPO / "bench" / "results"


@dataclass
class Outcome:
    status: int
    ttft: float = math.nan
    latency: float = math.nan
    tokens: int = 0
    target: str = ""
    invalid: bool = False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_emulators(
    presets: list[str], scale: float
) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    procs, urls = [], []
    for k, name in enumerate(presets):
        port = _free_port()
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "turnout.emulate",
                    "--port",
                    str(port),
                    "--preset",
                    name,
                    "--scale",
                    str(scale),
                    "--model",
                    "emulated",
                    "--seed",
                    str(k),
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        urls.append(f"http://127.0.0.1:{port}/v1")
    deadline = time.monotonic() + 30
    for url in urls:
        while True:
            try:
                with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"emulator at {url} did not start") from None
                time.sleep(0.05)
    return procs, urls


def gateway_config(urls: list[str], strategy: str) -> str:
    # The longest answers run for minutes at 90% load: no timeout may cut them short.
    timeouts = "timeouts: {first_token_s: 600, idle_s: 600, total_s: 3600}, pass_fields: [emulate]"
    deps = "".join(
        f'  gpu-{k + 1}: {{kind: openai, base_url: "{u}", model: emulated, {timeouts}}}\n'
        for k, u in enumerate(urls)
    )
    names = ", ".join(f"gpu-{k + 1}" for k in range(len(urls)))
    return (
        f"deployments:\n{deps}models:\n  fleet:\n    deployments: [{names}]\n"
        f"    routing: balanced\n    balance: {strategy}\n"
    )


def start_gateway(urls: list[str], strategy: str) -> tuple[subprocess.Popen[bytes], str]:
    """`turnout serve` in front of the emulators; its /v1 URL once it is ready."""
    folder = Path(tempfile.mkdtemp(prefix="turnout-live-"))
    config = folder / "gateway.yaml"
    config.write_text(
        gateway_config(urls, strategy) + f'store: {{url: "sqlite:///{folder}/turnout.db"}}\n',
        encoding="utf-8",
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "turnout.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1):
                return proc, url + "/v1"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start") from None
            time.sleep(0.1)


def body_of(req: SimRequest, model: str) -> dict[str, Any]:
    f = req.features
    messages = []
    if f.system_hash is not None:
        messages.append({"role": "system", "content": f"You are application {f.system_hash}."})
    messages.append({"role": "user", "content": "x " * (2 * max(1, req.prompt_tokens - 10))})
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "emulate": {"output_tokens": req.output_tokens, "prompt_tokens": req.prompt_tokens},
    }
    if f.max_tokens is not None:
        body["max_tokens"] = f.max_tokens
    if f.response_format == "json":
        body["response_format"] = {"type": "json_object"}
    return body


class Direct:
    """Client-side balancing with the gateway's own code, called where the gateway calls it."""

    def __init__(self, urls: list[str], strategy: str) -> None:
        self.urls = dict(zip((f"gpu-{k + 1}" for k in range(len(urls))), urls, strict=True))
        # The oracle is least_work told every answer's true length, as in the simulator.
        self.oracle = strategy == "oracle"
        self.tracker = LoadTracker(
            self.urls, strategy="least_work" if self.oracle else strategy, rng=random.Random(0)
        )
        self.predictor = FamilyQuantiles()

    def place(self, req: SimRequest) -> tuple[str, Ask]:
        if self.oracle:
            n = float(req.output_tokens)
            ask = Ask(req.prompt_tokens, n, (n,), None, req.prefix_key, req.prefix_tokens)
        else:
            ask = Ask.of(
                req.prompt_tokens,
                self.predictor.predict(req.features),
                prefix_key=req.prefix_key,
                prefix_tokens=req.prefix_tokens,
            )
        name = self.tracker.pick(ask)  # 1. routing: pick (or rank for fallbacks)
        assert name is not None
        self.tracker.start(name, req.id, ask)  # 2. the attempt is sent
        return name, ask


async def one(
    session: aiohttp.ClientSession,
    req: SimRequest,
    url: str,
    model: str,
    direct: Direct | None,
    t0: float,
) -> Outcome:
    name = ""
    if direct is not None:
        name, _ = direct.place(req)
        url = direct.urls[name]
    sent = time.monotonic()
    out = Outcome(0, target=name)
    try:
        async with session.post(url + "/chat/completions", json=body_of(req, model)) as r:
            out.status = r.status
            out.target = out.target or r.headers.get("x-turnout-deployment", "")
            if r.status != 200:
                await r.read()
                return out
            async for raw in r.content:
                line = raw.strip()
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    if chunk["error"].get("type") == "invalid_output":
                        # The whole answer streamed, then failed the gateway's validation (an
                        # emulator's words are not the JSON a json-format family asked for).
                        out.invalid = True
                        continue
                    out.status = -2  # the stream broke after it began: not a completion
                    break
                choices = chunk.get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    if out.tokens == 0:
                        out.ttft = time.monotonic() - sent
                    out.tokens += 1
                    if direct is not None:
                        direct.tracker.tokens(req.id)  # 3. first token, then every token
        out.latency = time.monotonic() - sent
        if out.status != 200:
            if direct is not None:
                direct.tracker.finish(req.id, ok=False)
            return out
        if direct is not None:  # 4. the end: the truth teaches speed and length
            direct.tracker.finish(req.id, output_tokens=out.tokens)
            direct.predictor.observe(req.features, out.tokens)
    except aiohttp.ClientError:
        out.status = -1
        if direct is not None:
            direct.tracker.finish(req.id, ok=False)
    return out


async def drive(
    reqs: list[SimRequest], url: str, model: str, direct: Direct | None
) -> list[Outcome]:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        t0 = time.monotonic()
        tasks = []
        for k, req in enumerate(reqs):
            delay = t0 + req.arrival - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, req, url, model, direct, t0)))
            if (k + 1) % 100 == 0:
                print(f"  sent {k + 1}/{len(reqs)}", file=sys.stderr, flush=True)
        return list(await asyncio.gather(*tasks))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--emulators", type=int, default=4)
    ap.add_argument(
        "--preset",
        default="cpu-small",
        help="one preset for all, or one per emulator, comma-separated",
    )
    ap.add_argument("--scale", type=float, default=1.0, help="slow every emulator down ×")
    ap.add_argument("--targets", help="use running servers (comma-separated /v1 URLs)")
    ap.add_argument("--gateway", help="send through this gateway (its /v1 URL)")
    ap.add_argument("--model", default="fleet", help="the gateway's model name")
    ap.add_argument("--direct", help="balance client-side with this strategy instead")
    ap.add_argument("--serve", help="start a turnout gateway balancing with this strategy")
    ap.add_argument("--load", type=float, default=0.7, help="fraction of fleet capacity")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--print-config",
        action="store_true",
        help="start the emulators, print a gateway config for them, wait",
    )
    ap.add_argument("--label", help="results file suffix")
    args = ap.parse_args()

    names = args.preset.split(",")
    presets = names * args.emulators if len(names) == 1 else names
    profiles = [preset(n).scaled(args.scale) if args.scale != 1 else preset(n) for n in presets]
    procs: list[subprocess.Popen[bytes]] = []
    if args.targets:
        urls = args.targets.split(",")
    else:
        procs, urls = start_emulators(presets, args.scale)

    def stop(*_: Any) -> None:
        for p in procs:
            p.terminate()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)

    def on_term(*_: Any) -> None:
        stop()
        sys.exit(1)

    signal.signal(signal.SIGTERM, on_term)
    try:
        if args.print_config:
            print(gateway_config(urls, args.direct or "least_work"), flush=True)
            print("emulators running; Ctrl-C stops them", file=sys.stderr)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
            return 0
        if args.serve:
            gateway, args.gateway = start_gateway(urls, args.serve)
            procs.append(gateway)
        if not (args.gateway or args.direct):
            raise SystemExit("live.py: give --serve STRATEGY, --gateway URL or --direct STRATEGY")
        w = workload("mixed")
        capacity = capacity_rps(w, profiles)
        reqs = generate(w, args.load * capacity, args.requests, args.seed)
        mode = (
            f"direct {args.direct}"
            if args.direct
            else f"gateway {args.serve}"
            if args.serve
            else f"gateway {args.gateway}"
        )
        print(
            f"{len(urls)} instances ({args.preset}), capacity {capacity:.2f} req/s, "
            f"load {args.load:.0%}, {mode}",
            file=sys.stderr,
        )
        direct = Direct(urls, args.direct) if args.direct else None
        started = time.time()
        outcomes = asyncio.run(drive(reqs, args.gateway or "", args.model, direct))
        took = time.time() - started
    finally:
        stop()

    ok = [o for o in outcomes if o.status == 200]
    skip = int(len(ok) * 0.1)  # warm-up, as in the simulator
    measured = ok[skip:]
    lat = [o.latency for o in measured]
    ttft = [o.ttft for o in measured if not math.isnan(o.ttft)]
    summary = {
        "mode": mode,
        "preset": args.preset,
        "scale": args.scale,
        "load": args.load,
        "capacity_rps": capacity,
        "requests": len(outcomes),
        "completed": len(ok),
        "shed_503": sum(o.status == 503 for o in outcomes),
        "failed": sum(o.status not in (200, 503) for o in outcomes),
        "invalid_output": sum(o.invalid for o in outcomes),
        "latency_p50_s": percentile(lat, 0.5),
        "latency_p90_s": percentile(lat, 0.9),
        "latency_p99_s": percentile(lat, 0.99),
        "ttft_p50_s": percentile(ttft, 0.5),
        "ttft_p99_s": percentile(ttft, 0.99),
        "per_instance": {
            t: sum(o.target == t for o in outcomes) for t in {o.target for o in outcomes}
        },
        "took_s": took,
    }
    label = args.label or (args.direct or args.serve or "gateway") + f"_{round(args.load * 100)}"
    command = "flock /tmp/turnout-bench.lock .venv/bin/python bench/balance/live.py " + " ".join(
        sys.argv[1:]
    )
    md = [
        f"# Live balancing: {mode}",
        "",
        f"Reproduce: `{command}`",
        "",
        f"{platform.machine()}, Python {platform.python_version()}; {len(urls)} × `turnout "
        f"emulate` ({args.preset}, scale {args.scale}); load {args.load:.0%} of "
        f"{capacity:.2f} req/s; {len(outcomes)} requests, first 10% warm-up left out; "
        f"took {took:.0f} s.",
        "",
        "| p50 s | p90 s | p99 s | p50 TTFT s | p99 TTFT s | completed | shed (503) | failed "
        "| answered, invalid JSON (within completed) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {summary['latency_p50_s']:.2f} | {summary['latency_p90_s']:.2f} "
        f"| {summary['latency_p99_s']:.2f} | {summary['ttft_p50_s']:.2f} "
        f"| {summary['ttft_p99_s']:.2f} | {summary['completed']} | {summary['shed_503']} "
        f"| {summary['failed']} | {summary['invalid_output']} |",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"balance_live_{label}.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (RESULTS / f"balance_live_{label}.json").write_text(
        json.dumps({"command": command, **summary}, indent=1) + "\n", encoding="utf-8"
    )
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
