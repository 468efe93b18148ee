"""Time from a candidate's degradation to the canary's automatic rollback, in requests and seconds.

    flock /tmp/turnout-bench.lock .venv/bin/python bench/migrate/canary.py

A real gateway (in this process, on loopback) splits traffic between two loopback upstreams that
answer JSON after 20 ms. Eight client threads keep it busy. Halfway through a stage (once the
stage holds half its `min_requests_per_stage` candidate requests) the candidate degrades: it
answers 500s, or invalid JSON, or 10x slower. Counted from the record: requests placed between
the switch and the rollback event (all, and those the candidate took), and the seconds between
them. Healthy control runs (no degradation) show whether the gate rolls back a good candidate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from gateway_harness import RunningGateway, start_gateway  # noqa: E402
from upstream import ScriptedUpstream, Step  # noqa: E402

from turnout.migrate.events import read_events  # noqa: E402
from turnout.store.query import _open  # noqa: E402

COMMAND = "flock /tmp/turnout-bench.lock .venv/bin/python bench/migrate/canary.py"
STAGES = (5, 25, 50, 100)
MIN_REQUESTS = 50
HEALTHY = Step(content='{"answer": 4}', delay_s=0.02)
DEGRADED = {
    "errors (500)": Step(status=500),
    "invalid output": Step(content="four, I think", delay_s=0.02),
    "10x slower": Step(content='{"answer": 4}', delay_s=0.2),
}
BODY = {
    "model": "assistant",
    "messages": [{"role": "user", "content": "What is 2 + 2? Answer in JSON."}],
    "response_format": {"type": "json_object"},
}


def config(old: ScriptedUpstream, cand: ScriptedUpstream) -> str:
    stages = ", ".join(str(s) for s in STAGES)
    return f"""
deployments:
  old: {{kind: openai, base_url: "{old.base_url}", model: m, rtt_probe_s: 0,
         price: {{input_per_mtok: 1, output_per_mtok: 2}}}}
  cand: {{kind: openai, base_url: "{cand.base_url}", model: m, rtt_probe_s: 0,
          price: {{input_per_mtok: 1, output_per_mtok: 2}}, cooldown: {{failures: 1000000}}}}
models:
  assistant:
    deployments: [old]
    lifecycle: {{backoff: {{base_s: 0, max_s: 0}}}}
    canary: {{deployment: cand, stages: [{stages}], min_requests_per_stage: {MIN_REQUESTS},
              max_requests_per_stage: 4000, min_stage_s: 0}}
"""


class Load:
    """Client threads posting until stopped."""

    def __init__(self, gw: RunningGateway, threads: int) -> None:
        self.stop = threading.Event()
        self.sent = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(gw.url,)) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self, url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not self.stop.is_set():
                http.post("/v1/chat/completions", json=BODY)
                with self._lock:
                    self.sent += 1

    def close(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join()


def status(gw: RunningGateway) -> dict[str, Any]:
    return gw.gateway.engine.canaries.status()["assistant"]  # type: ignore[attr-defined,no-any-return]


def placed_between(url: str, t0: float, t1: float) -> tuple[int, int, int]:
    """Requests that started in [t0, t1]: all, the candidate's, and those answered with an error."""
    with _open(url) as conn:
        row = conn.execute(
            "SELECT count(*), "
            "sum(json_extract(migration, '$.canary.arm') = 'candidate'), "
            "sum(http_status >= 400) FROM requests WHERE started >= ? AND started <= ?",
            (t0, t1),
        ).fetchone()
    return int(row[0]), int(row[1] or 0), int(row[2] or 0)


def trial(
    old: ScriptedUpstream, cand: ScriptedUpstream, store: Path, degradation: str | None,
    stage: int, threads: int, limit_s: float,
) -> dict[str, Any]:  # fmt: skip
    old.reset()
    cand.reset()
    old.default = HEALTHY
    cand.default = HEALTHY
    gw = start_gateway(config(old, cand), store)
    load = Load(gw, threads)
    out: dict[str, Any] = {"degradation": degradation or "none (control)", "stage_percent": None}
    try:
        deadline = time.monotonic() + limit_s
        while degradation is not None:
            s = status(gw)
            if s["stage"] - 1 == stage and s["candidate"]["n"] >= MIN_REQUESTS // 2:
                break
            if s["status"] != "running" or time.monotonic() > deadline:
                out["error"] = f"never reached the stage: {s['status']} at stage {s['stage']}"
                return out
            time.sleep(0.005)
        t_switch = time.time()
        if degradation is not None:
            cand.default = DEGRADED[degradation]
            out["stage_percent"] = STAGES[stage]
        while status(gw)["status"] == "running":
            if time.monotonic() > deadline:
                out["error"] = "no decision in time"
                return out
            time.sleep(0.005)
        final = status(gw)
    finally:
        load.close()
        gw.stop()
    events = [e for e in read_events(f"sqlite:///{store}") if e.mode == "canary"]
    last = events[-1]
    out["outcome"] = final["status"]
    out["decided_at_stage_percent"] = last.detail.get("from_percent", last.percent)
    if degradation is not None and last.kind == "rolled_back":
        n_all, n_cand, n_err = placed_between(f"sqlite:///{store}", t_switch, last.at)
        out.update(
            seconds=round(last.at - t_switch, 3),
            requests=n_all,
            candidate_requests=n_cand,
            error_replies=n_err,
            failed_checks=last.detail["gate"]["failed"],
        )
    out["stages_passed"] = sum(e.kind in ("promoted", "completed") for e in events)
    return out


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    keys = sorted(
        {(r["degradation"], r["stage_percent"]) for r in rows},
        key=lambda k: (k[1] or -1, k[0]),
    )
    for deg, pct in keys:
        cell = [r for r in rows if (r["degradation"], r["stage_percent"]) == (deg, pct)]
        rolled = [r for r in cell if r.get("outcome") == "rolled_back" and "requests" in r]
        s: dict[str, Any] = {
            "degradation": deg,
            "stage_percent": pct,
            "trials": len(cell),
            "rolled_back": sum(r.get("outcome") == "rolled_back" for r in cell),
            "completed": sum(r.get("outcome") == "completed" for r in cell),
        }
        for key in ("requests", "candidate_requests", "error_replies", "seconds"):
            xs = [r[key] for r in rolled]
            if xs:
                s[f"{key}_median"] = statistics.median(xs)
                s[f"{key}_max"] = max(xs)
        out.append(s)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--controls", type=int, default=5)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--stages", default="0,1,2", help="indexes of the stages to degrade in")
    ap.add_argument("--limit-s", type=float, default=180)
    ap.add_argument("--out", default=str(ROOT / "bench/results"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="turnout-canary-bench-"))
    rows: list[dict[str, Any]] = []
    with ScriptedUpstream(HEALTHY) as old, ScriptedUpstream(HEALTHY) as cand:
        plan: list[tuple[str | None, int]] = [(None, 0)] * args.controls
        for stage in (int(s) for s in args.stages.split(",")):
            for deg in DEGRADED:
                plan += [(deg, stage)] * args.repeats
        for i, (deg, stage) in enumerate(plan):
            row = trial(old, cand, work / f"t{i}.db", deg, stage, args.threads, args.limit_s)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    results = {
        "command": COMMAND,
        "stages": STAGES,
        "min_requests_per_stage": MIN_REQUESTS,
        "threads": args.threads,
        "summary": summarise(rows),
        "trials": rows,
    }
    write(results, Path(args.out))
    return 0


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "migrate_canary.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"Reproduce: `{results['command']}`",
        "",
        "# Canary: from a candidate's degradation to the automatic rollback",
        "",
        f"Stages {'/'.join(str(s) for s in results['stages'])}%, "
        f"min_requests_per_stage {results['min_requests_per_stage']}, min_stage_s 0, gate "
        "defaults (α 0.05, each look at α ÷ 4 stages; success margin 0.05, latency and cost "
        "margins 25%). Both upstreams "
        f"answer JSON after 20 ms; {results['threads']} client threads. The candidate degrades "
        "once the stage holds half its minimum of candidate requests. *requests*: placed "
        "between the degradation and the rollback (all arms); *candidate*: of those, the ones "
        "the candidate took; *error replies*: of those, answered with an HTTP error (a 500 "
        "from the candidate falls back to the old model, so users see none). Median (max) "
        "over the trials.",
        "",
        "| degradation | at stage | trials | rolled back | completed | requests | candidate | "
        "error replies | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def mm(s: dict[str, Any], key: str, fmt: str = "{:g}") -> str:
        if f"{key}_median" not in s:
            return "-"
        return f"{fmt.format(s[key + '_median'])} ({fmt.format(s[key + '_max'])})"

    for s in results["summary"]:
        stage = "-" if s["stage_percent"] is None else f"{s['stage_percent']}%"
        lines.append(
            f"| {s['degradation']} | {stage} | {s['trials']} | {s['rolled_back']} | "
            f"{s['completed']} | {mm(s, 'requests')} | {mm(s, 'candidate_requests')} | "
            f"{mm(s, 'error_replies')} | {mm(s, 'seconds', '{:.2f}')} |"
        )
    (out / "migrate_canary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
