"""Cost/latency frontier of policy routing: one mixed workload replayed against edge + cloud.

Per arm, a fresh `turnout serve` process (its own SQLite record, its estimates learned from
nothing) and a fresh loopback cloud (`bench/routing/cloud.py`: network RTT, time to first token,
decode speed, price per Mtok). `edge` is the embedded SmolLM2-135M with an amortised `hourly_usd`.
The same seeded workload (short chats, long prompts, prompts with e-mail addresses and card
numbers, risky-looking non-PII; some with a latency budget header; 25% streamed) is sent open-loop
on the same Poisson schedule to each arm: the four objectives under `routing: policy`, and the
baselines "all cloud" and "all edge" (one deployment, `routing: ordered`).

Where each request ran, and the predictions it was routed on, come from turnout's record; which
requests reached the cloud, and what they contained, from the cloud server's own log.

Reproduce:
    flock /tmp/turnout-bench.lock .venv/bin/python bench/routing/frontier.py
Writes bench/results/routing_frontier.{md,json,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))

from workload import Request, generate  # noqa: E402

from turnout.sim.report import percentile  # noqa: E402

RESULTS = REPO / "bench" / "results"
WORK = REPO / "bench" / ".work" / "frontier"
TURNOUT = REPO / ".venv" / "bin" / "turnout"
SERVED = ("completed", "truncated")


@dataclass(frozen=True)
class Arm:
    name: str
    deployments: str  # YAML list
    routing: str
    objective: str | None = None
    privacy: str = "off"


ARMS = {
    a.name: a
    for a in (
        Arm("cheapest_within_slo", "[cloud, edge]", "policy", "cheapest_within_slo", "block"),
        Arm("fastest", "[cloud, edge]", "policy", "fastest", "block"),
        Arm("fastest+redact", "[cloud, edge]", "policy", "fastest", "redact"),
        Arm("local_only", "[cloud, edge]", "policy", "local_only", "block"),
        Arm("cloud_only", "[cloud, edge]", "policy", "cloud_only", "block"),
        Arm("cloud_only+redact", "[cloud, edge]", "policy", "cloud_only", "redact"),
        Arm("all cloud", "[cloud]", "ordered"),
        Arm("all edge", "[edge]", "ordered"),
    )
}
DEFAULT_ARMS = "all cloud,all edge,cheapest_within_slo,fastest,fastest+redact,local_only,cloud_only"


@dataclass
class Sent:
    req: Request
    status: int = 0
    latency_s: float = float("nan")
    request_id: str | None = None
    route: str | None = None
    deployment: str | None = None
    error: str | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(arm: Arm, a: argparse.Namespace, port: int, cloud_port: int, db: Path) -> str:
    objective = f"\n    objective: {arm.objective}" if arm.objective else ""
    return f"""
server: {{host: 127.0.0.1, port: {port}}}
store: {{url: "sqlite:///{db}", record_bodies: none}}
deployments:
  edge:
    {{kind: embedded, model: smollm2-135m, tags: [local], max_concurrency: {a.edge_slots},
     hourly_usd: {a.edge_hourly_usd}}}
  cloud:
    kind: openai
    base_url: "http://127.0.0.1:{cloud_port}/v1"
    model: cloud-model
    tags: [cloud]
    price: {{input_per_mtok: {a.cloud_in_per_mtok}, output_per_mtok: {a.cloud_out_per_mtok}}}
    rtt_probe_s: 5
models:
  bench:
    deployments: {arm.deployments}
    routing: {arm.routing}{objective}
    privacy: {arm.privacy}
    lifecycle: {{on_truncation: accept}}
"""


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout_s}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def send(session: aiohttp.ClientSession, url: str, r: Request, t0: float) -> Sent:
    await asyncio.sleep(max(0.0, t0 + r.at_s - time.monotonic()))
    out = Sent(r)
    sent = time.monotonic()
    try:
        async with session.post(url, json=r.body("bench"), headers=r.headers()) as resp:
            out.status = resp.status
            out.request_id = resp.headers.get("x-turnout-request-id")
            out.route = resp.headers.get("x-turnout-route")
            out.deployment = resp.headers.get("x-turnout-deployment")
            async for _ in resp.content.iter_any():  # the whole answer, SSE included
                pass
    except (aiohttp.ClientError, TimeoutError) as exc:
        out.error = repr(exc)
    out.latency_s = time.monotonic() - sent
    return out


async def replay(port: int, workload: list[Request]) -> list[Sent]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as session:
        t0 = time.monotonic() + 0.2
        return list(await asyncio.gather(*(send(session, url, r, t0) for r in workload)))


def read_record(db: Path) -> dict[str, dict[str, Any]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT id, outcome, events, attempt_log, latency_ms FROM requests")
        return {
            r["id"]: {
                "outcome": r["outcome"],
                "events": json.loads(r["events"]),
                "attempts": json.loads(r["attempt_log"]),
                "latency_ms": r["latency_ms"],
            }
            for r in rows
        }
    finally:
        conn.close()


def read_cloud_log(path: Path) -> list[str]:
    """The text of every completion request the cloud received."""
    texts = []
    for line in path.read_text().splitlines():
        body = json.loads(line)["body"]
        texts.append(" ".join(str(m.get("content")) for m in body.get("messages") or ()))
    return texts


def run_arm(arm: Arm, a: argparse.Namespace, workload: list[Request]) -> dict[str, Any]:
    work = WORK / arm.name.replace(" ", "_").replace("+", "_")
    work.mkdir(parents=True, exist_ok=True)
    db, log, cfg = work / "record.db", work / "cloud.jsonl", work / "turnout.yaml"
    for p in (db, log, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    port, cloud_port = free_port(), free_port()
    cfg.write_text(config(arm, a, port, cloud_port, db))
    env = dict(os.environ, PYTHONPATH=str(a.src))
    cloud = subprocess.Popen(
        [sys.executable, str(HERE / "cloud.py"), "--port", str(cloud_port),
         "--rtt-ms", str(a.cloud_rtt_ms), "--ttft-ms", str(a.cloud_ttft_ms),
         "--tokens-per-s", str(a.cloud_tokens_per_s), "--log", str(log)],
        start_new_session=True,
    )  # fmt: skip
    gateway = None
    try:
        wait_http(f"http://127.0.0.1:{cloud_port}/v1/models", cloud, 20)
        with (work / "turnout.log").open("wb") as glog:
            gateway = subprocess.Popen(
                [str(TURNOUT), "serve", "--config", str(cfg)],
                env=env,
                cwd=work,
                stdout=glog,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_http(f"http://127.0.0.1:{port}/readyz", gateway, 120)
        started = time.monotonic()
        sent = asyncio.run(replay(port, workload))
        wall = time.monotonic() - started
    finally:
        if gateway is not None:
            stop(gateway)  # SIGTERM: the record writer flushes on the way out
        stop(cloud)
    return summarise(arm, a, sent, read_record(db), read_cloud_log(log), wall)


def _edge_cost(a: argparse.Namespace, attempt: dict[str, Any]) -> float:
    """Amortised: the slot-seconds the attempt held, at the hour's price over the edge's slots."""
    held = (attempt.get("ended") or attempt["started"]) - attempt["started"]
    return a.edge_hourly_usd / 3600 * held / a.edge_slots


def _ms(x: float) -> float:
    return round(x * 1000, 1)


def summarise(
    arm: Arm,
    a: argparse.Namespace,
    sent: list[Sent],
    record: dict[str, dict[str, Any]],
    cloud_texts: list[str],
    wall_s: float,
) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    ran_on: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    cost = {"cloud": 0.0, "edge": 0.0}
    lat_served: list[float] = []
    budget_n = budget_hit = 0
    flagged = unrecorded = 0
    first_pred: dict[str, float] = {}
    last_pred: dict[str, float] = {}
    ratio: dict[str, list[float]] = {"cloud": [], "edge": []}
    for s in sorted(sent, key=lambda s: s.req.at_s):
        rec = record.get(s.request_id or "")
        if rec is None:
            unrecorded += 1
            outcomes[f"http {s.status}" if s.status else "client error"] += 1
            continue
        outcomes[rec["outcome"]] += 1
        routed = next((e for e in rec["events"] if e["state"] in ("routed", "blocked")), None)
        attrs = (routed or {}).get("attrs") or {}
        if attrs.get("sensitive"):
            flagged += 1
        if attrs.get("rule"):
            rules["".join("#" if c.isdigit() else c for c in attrs["rule"])] += 1
        preds = {c["deployment"]: c["latency_ms"] / 1000 for c in attrs.get("candidates", ())}
        for dep, p in preds.items():
            first_pred.setdefault(dep, p)
            last_pred[dep] = p
        for att in rec["attempts"]:
            dep = att["deployment"]
            if dep == "edge":
                cost["edge"] += _edge_cost(a, att)
            else:
                cost["cloud"] += att.get("cost_usd", 0.0)
        if rec["outcome"] in SERVED:
            ran = rec["attempts"][-1]["deployment"]
            ran_on[ran] += 1
            if len(rec["attempts"]) == 1 and preds.get(ran, 0) > 0:
                ratio[ran].append(s.latency_s / preds[ran])  # what the client saw vs predicted
            lat_served.append(s.latency_s)
            if s.req.budget_ms is not None:
                budget_n += 1
                budget_hit += s.latency_s * 1000 <= s.req.budget_ms
        elif s.req.budget_ms is not None:
            budget_n += 1  # a budget request that was not served missed its budget
    tickets = {t.split(".", 1)[0].removeprefix("Ticket ") for t in cloud_texts}
    pii_reqs = [s.req for s in sent if s.req.pii]
    blob = "\n".join(cloud_texts)
    served = sum(ran_on.values())
    total = cost["cloud"] + cost["edge"]
    return {
        "arm": arm.name,
        "routing": arm.routing,
        "objective": arm.objective,
        "privacy": arm.privacy,
        "deployments": arm.deployments,
        "requests": len(sent),
        "wall_s": round(wall_s, 1),
        "outcomes": dict(outcomes),
        "unrecorded": unrecorded,
        "served": served,
        "served_on": dict(ran_on),
        "local_share": round(ran_on["edge"] / served, 3) if served else None,
        "cost_usd": {k: round(v, 8) for k, v in cost.items()} | {"total": round(total, 8)},
        "usd_per_1k_served": round(total / served * 1000, 6) if served else None,
        "edge_hardware_usd_for_wall_time": round(a.edge_hourly_usd * wall_s / 3600, 6),
        "latency_ms": {
            "p50": _ms(percentile(lat_served, 0.5)),
            "p95": _ms(percentile(lat_served, 0.95)),
            "p99": _ms(percentile(lat_served, 0.99)),
        },
        "budget": {
            "requests": budget_n,
            "met": budget_hit,
            "hit_rate": round(budget_hit / budget_n, 3) if budget_n else None,
        },
        "cloud_received": len(cloud_texts),
        "pii_requests": len(pii_reqs),
        "pii_requests_reaching_cloud": sum(r.ticket in tickets for r in pii_reqs),
        "pii_values_in_cloud_log": sum(v in blob for r in pii_reqs for v in r.pii),
        "flagged_sensitive": flagged,
        "rules": dict(rules.most_common()),
        "predicted_latency_s": {
            d: {"first": round(first_pred[d], 3), "last": round(last_pred[d], 3)}
            for d in first_pred
        },
        "latency_over_predicted_median": {
            d: round(percentile(v, 0.5), 2) for d, v in ratio.items() if v
        },
    }


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    lines = [
        f"Reproduce: `{result['command']}`",
        "",
        "# Routing frontier: share kept local, cost and latency per objective",
        "",
        f"{p['requests']} requests per arm (seed {p['seed']}), open loop, Poisson arrivals at "
        f"{p['rate']} req/s, the same schedule for every arm; 25% streamed; "
        f"{int(p['budget_share'] * 100)}% carry `x-turnout-latency-budget-ms` "
        f"(one of {', '.join(str(int(b)) for b in p['budgets_ms'])} ms); max_tokens 8–48. "
        f"Edge: embedded SmolLM2-135M, {p['edge_slots']} slots, amortised "
        f"${p['edge_hourly_usd']}/h. Cloud: loopback server, RTT {p['cloud_rtt_ms']:.0f} ms, "
        f"TTFT {p['cloud_ttft_ms']:.0f} ms, {p['cloud_tokens_per_s']:.0f} tokens/s, "
        f"${p['cloud_in_per_mtok']}/${p['cloud_out_per_mtok']} per Mtok in/out. "
        f"Machine: {result['machine']}.",
        "",
        "| arm | routing | privacy | served | kept local | $ / 1k served | cloud $ | edge $ "
        "| p50 ms | p95 ms | budget met | PII reqs → cloud | PII values in cloud log | outcomes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["arms"]:
        routing = r["routing"] + (f" ({r['objective']})" if r["objective"] else "")
        b = r["budget"]
        local = "–" if r["local_share"] is None else f"{r['local_share'] * 100:.0f}%"
        per_1k = "–" if r["usd_per_1k_served"] is None else f"{r['usd_per_1k_served']:.4f}"
        hit = "–" if b["hit_rate"] is None else f"{b['hit_rate'] * 100:.0f}% of {b['requests']}"
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
        lines.append(
            f"| {r['arm']} | {routing} | {r['privacy']} | {r['served']}/{r['requests']} | {local} "
            f"| {per_1k} | {r['cost_usd']['cloud']:.5f} | {r['cost_usd']['edge']:.5f} "
            f"| {r['latency_ms']['p50']:.0f} | {r['latency_ms']['p95']:.0f} | {hit} "
            f"| {r['pii_requests_reaching_cloud']}/{r['pii_requests']} "
            f"| {r['pii_values_in_cloud_log']} | {outcomes} |"
        )
    lines += [
        "",
        "Latency: client-side, request sent → last byte (the whole SSE stream when streamed), "
        "served requests only (completed or truncated: every answer is capped by max_tokens, so "
        "`on_truncation: accept`). Budget met: served within its budget; a budget request that "
        "was not served counts as missed. Cloud $: from turnout's record (price × usage the cloud "
        "reported). Edge $: amortised, the slot-seconds each edge attempt held × hourly price ÷ "
        "slots (turnout's record prices edge attempts at 0; see notes). PII reqs → cloud: "
        "requests carrying a planted e-mail/card whose ticket appears in the cloud's own log; "
        "PII values in cloud log: planted values found verbatim in what the cloud received.",
        "",
        "## How each arm routed (rules from the record, digits as #)",
        "",
        "| arm | ran on | rules | predicted latency first → last (s) "
        "| client latency ÷ predicted (median) | flagged sensitive |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["arms"]:
        ran = ", ".join(f"{k} {v}" for k, v in sorted(r["served_on"].items()))
        rules = "; ".join(f"{k} ×{v}" for k, v in r["rules"].items())
        pred = ", ".join(
            f"{d} {v['first']:.2f}→{v['last']:.2f}" for d, v in r["predicted_latency_s"].items()
        )
        ratio = ", ".join(f"{d} {v:.2f}" for d, v in r["latency_over_predicted_median"].items())
        lines.append(
            f"| {r['arm']} | {ran} | {rules} | {pred} | {ratio} | {r['flagged_sensitive']} |"
        )
    lines += ["", "## Notes", "", *result.get("notes", [])]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in result["arms"]:
        if r["usd_per_1k_served"] is None:
            continue
        x, y = r["usd_per_1k_served"], r["latency_ms"]["p95"]
        ax.scatter([x], [y], s=40)
        label = f"{r['arm']} ({(r['local_share'] or 0) * 100:.0f}% local)"
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("$ per 1k served requests (cloud price + edge amortised)")
    ax.set_ylabel("p95 latency, ms")
    ax.set_title("Routing frontier: cost vs p95 latency per arm")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--rate", type=float, default=2.5, help="arrivals per second (Poisson)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--arms", default=DEFAULT_ARMS, help=f"comma-separated, of: {', '.join(ARMS)}")
    p.add_argument("--budgets-ms", default="600,1000,2000")
    p.add_argument("--budget-share", type=float, default=0.3)
    p.add_argument("--edge-slots", type=int, default=2)
    p.add_argument("--edge-hourly-usd", type=float, default=0.05)
    p.add_argument("--cloud-rtt-ms", type=float, default=150.0)
    p.add_argument("--cloud-ttft-ms", type=float, default=120.0)
    p.add_argument("--cloud-tokens-per-s", type=float, default=80.0)
    p.add_argument("--cloud-in-per-mtok", type=float, default=0.15)
    p.add_argument("--cloud-out-per-mtok", type=float, default=0.60)
    p.add_argument(
        "--src", type=Path, default=REPO / "src", help="turnout sources the gateway runs"
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--name", default="routing_frontier")
    p.add_argument("--notes", type=Path, help="markdown lines appended under Notes")
    p.add_argument("--render", action="store_true", help="rewrite the .md and .png from the .json")
    a = p.parse_args()
    out_json = a.out / f"{a.name}.json"
    if a.render:
        result = json.loads(out_json.read_text())
    else:
        budgets = tuple(float(b) for b in a.budgets_ms.split(","))
        workload = generate(a.requests, a.rate, a.seed, budgets, a.budget_share)
        arms = [ARMS[n.strip()] for n in a.arms.split(",")]
        params = {
            k: v for k, v in vars(a).items() if k not in ("out", "notes", "render", "arms", "src")
        }
        params["budgets_ms"] = list(budgets)
        result = {
            "command": "flock /tmp/turnout-bench.lock .venv/bin/python bench/routing/frontier.py "
            + " ".join(sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}",
            "params": params,
            "workload": dict(Counter(r.kind for r in workload)),
            "arms": [],
        }
        for arm in arms:
            print(f"arm {arm.name}: {len(workload)} requests ...", flush=True)
            r = run_arm(arm, a, workload)
            print(json.dumps(r), flush=True)
            result["arms"].append(r)
    if a.notes is not None:
        result["notes"] = a.notes.read_text().splitlines()
    a.out.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=1) + "\n")
    (a.out / f"{a.name}.md").write_text(render(result))
    plot(result, a.out / f"{a.name}.png")
    print(render(result))


if __name__ == "__main__":
    main()
