"""Replay speed: a recorded run of the 8-step support agent (examples/support_agent), offline.

Loads the example's recorded cassette in mode `none` (no model is loaded, nothing leaves the
machine), starts an in-process gateway, and times the agent's whole run through it — the real
agent code, the openai SDK, HTTP to turnout, turnout's lifecycle, the replaying backend —
repeatedly. With --live, also times one live run on the embedded model for comparison.
Prints a table; writes bench/results/testing_replay.{md,json}.

    flock /tmp/turnout-bench.lock .venv/bin/python bench/testing/replay_speed.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "support_agent"
CASSETTE = (
    EXAMPLE / "cassettes" / "test_support_agent" / "test_replayed_run_walks_the_whole_plan.json"
)
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(EXAMPLE))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--live", action="store_true", help="also time one live run")
    args = ap.parse_args()

    t0 = time.perf_counter()
    from agent import SupportAgent
    from test_support_agent import CONFIG

    from turnout.testing import Cassette, InProcessGateway, Mode

    t1 = time.perf_counter()
    cassette = Cassette.load(CASSETTE, Mode.NONE)
    gateway = InProcessGateway(CONFIG, cassette=cassette).start()
    t2 = time.perf_counter()
    client = gateway.openai()
    first = SupportAgent(client).run()
    t3 = time.perf_counter()
    imports, start, first_run, cold = t1 - t0, t2 - t1, t3 - t2, t3 - t1
    runs = []
    for _ in range(args.repeats):
        cassette.rewind()
        t = time.perf_counter()
        result = SupportAgent(client).run()
        runs.append(time.perf_counter() - t)
        assert result.messages == first.messages
    client.close()
    gateway.stop()
    assert not cassette.misses, cassette.misses

    live_s = None
    if args.live:
        with InProcessGateway(CONFIG) as live, live.openai() as c:
            t = time.perf_counter()
            SupportAgent(c).run()
            live_s = time.perf_counter() - t

    calls = first.model_calls
    out = {
        "cassette": str(CASSETTE.relative_to(ROOT)),
        "model_calls": calls,
        "agent_steps": len(first.steps) + 1,
        "imports_s": imports,
        "gateway_start_s": start,
        "first_run_s": first_run,
        "cold_s": cold,
        "replay_median_s": statistics.median(runs),
        "replay_max_s": max(runs),
        "per_call_ms": statistics.median(runs) / calls * 1000,
        "repeats": args.repeats,
        "live_s": live_s,
    }
    lines = [
        "# Replay speed of a recorded 8-step agent run (turnout.testing)",
        "",
        f"The support agent of `examples/support_agent` (7 tool steps and a reply; {calls} model "
        "calls in the recorded run, retries of failed steps included), replayed from "
        f"`{out['cassette']}` in mode `none` through an in-process gateway, offline.",
        "",
        "| measure | seconds |",
        "|---|---|",
        f"| imports (openai SDK, turnout, the agent), once per process | {imports:.3f} |",
        f"| load the cassette, start the gateway | {start:.3f} |",
        f"| first run (the SDK warms up) | {first_run:.3f} |",
        f"| cold: cassette + gateway + first run | {cold:.3f} |",
        f"| one run, median of {args.repeats} | {out['replay_median_s']:.3f} |",
        f"| one run, slowest of {args.repeats} | {out['replay_max_s']:.3f} |",
        f"| per model call (median run) | {out['per_call_ms'] / 1000:.4f} |",
    ]
    if live_s is not None:
        lines.append(f"| the same agent live on the embedded SmolLM2-135M | {live_s:.2f} |")
    lines += [
        "",
        f"Target: under 1 s offline → cold {cold:.2f} s, warm {out['replay_median_s']:.3f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "testing_replay.md").write_text(text)
    (RESULTS / "testing_replay.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
