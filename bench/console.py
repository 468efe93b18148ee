"""The console on a large record, and what an open console costs the request path.

1. Render, on each of `--stores` (SQLite and PostgreSQL): a record of `--records` synthetic
   requests (default 1,000,000) over 7 days, written through the store's own `RecordWriter`
   (SQLite: kept at `--db` and reused when it already holds them; PostgreSQL: a fresh database
   in a throwaway cluster, bench/pg_cluster.py, removed at the end). `turnout serve` on it;
   measured: the time to the last byte of `/ui/requests` (first page,
   filtered pages, a page deep in the record by cursor), of a trace, and of the overview's feed,
   each the median of `--repeat` requests after one cold one; and in headless Chromium the time
   from navigation to the load event of the requests page and of a trace.
2. Cost: `turnout serve` (record with full bodies) in front of bench/upstream.py; wrk sends small
   chat requests at c=1 (latency) and c=32 (throughput), `--seconds` each, in rounds alternating
   console closed and console open (Chromium on `/ui/`, polling every 2 s, plus the requests
   page reloaded every 2 s). Reported: the medians of the rounds, p50 at c=1 and req/s at c=32.

Run: `flock /tmp/turnout-bench.lock .venv/bin/python bench/console.py`; results in
bench/results/console.{md,json}. Needs wrk, Debian's chromium and PostgreSQL's server binaries.
With `--skip cost` the cost part's last results are carried over from console.json, marked so.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PY = sys.executable
MODELS = ("assistant", "coder", "summariser")
DEPLOYMENTS = ("cloud-a", "cloud-b", "edge")
STORE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
OUTCOMES = ("completed",) * 90 + ("truncated",) * 4 + ("failed_upstream",) * 3 + ("rejected",) * 3
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO / "src"))


def wait_up(port: int, path: str = "/healthz", timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port}")


# -- the record ----------------------------------------------------------------------------------


def synthetic_run(i: int, at: float, rng: random.Random) -> Any:
    from turnout.lifecycle.run import Attempt, Event, Run
    from turnout.lifecycle.states import State

    model = MODELS[i % len(MODELS)]
    outcome = State(rng.choice(OUTCOMES))
    chosen = DEPLOYMENTS[rng.randrange(len(DEPLOYMENTS))]
    latency = rng.lognormvariate(-1.0, 0.6)
    run = Run(
        id=f"{int(at * 1000):012x}{i:012x}",
        model=model,
        operation="chat",
        started=at,
        request_body={
            "model": model,
            "messages": [{"role": "user", "content": f"Question number {i}: what is {i % 97}?"}],
        },
        key_id=f"key_{i % 20:02d}",
        tenant=f"team-{i % 5}",
    )
    if outcome is not State.REJECTED:
        candidates = [{"deployment": d, "latency_ms": 300.0, "cost_usd": 1e-5} for d in DEPLOYMENTS]
        routed = {"chosen": chosen, "rule": "fastest", "candidates": candidates}
        run.events.append(Event(State.ROUTED, at + 0.0005, routed))
        run.events.append(
            Event(State.ATTEMPTING, at + 0.0006, {"attempt": 1, "deployment": chosen})
        )
        ok = outcome is not State.FAILED_UPSTREAM
        a = Attempt(1, chosen, at + 0.0006, at + latency, ok=ok, prompt_tokens=20)
        a.completion_tokens = 40 if ok else 0
        a.cost_usd = 3e-5 if ok else 0.0
        a.error = None if ok else "server_error"
        a.finish_reason = "stop" if ok else None
        run.attempts.append(a)
        run.response_body = {"choices": [{"message": {"role": "assistant", "content": "42."}}]}
    run.events.append(Event(outcome, at + latency, {}))
    run.state = outcome
    run.ended = at + latency
    run.http_status = 200 if outcome in (State.COMPLETED, State.TRUNCATED) else 502
    if i % 100 == 7:
        run.attrs["intent"] = {"signals": ["rephrase"]}
    return run


def build_sqlite(db: Path, n: int) -> float:
    """Seconds spent writing; 0 when `db` already holds `n` requests."""
    from turnout.store.page import RequestFilter
    from turnout.store.read import open_reader

    if db.exists():
        with open_reader(f"sqlite:///{db}") as reader:
            oldest = reader.page(RequestFilter(), None, 1)
        done = db.with_suffix(".done")
        if oldest and done.exists() and done.read_text().strip() == str(n):
            return 0.0
        for p in db.parent.glob(db.name + "*"):
            p.unlink()
    took = build_record(f"sqlite:///{db}", n)
    db.with_suffix(".done").write_text(str(n))
    return took


def build_record(url: str, n: int) -> float:
    """Seconds spent writing `n` synthetic requests into the empty store at `url`."""
    from turnout.config.schema import Retention
    from turnout.store.writer import RecordWriter

    writer = RecordWriter(url, "full", 3600, n + 1, Retention(0, 0, 3600))
    writer.open()
    rng = random.Random(21)
    t0 = time.perf_counter()
    start = time.time() - 7 * 86400
    step = 7 * 86400 / n
    for lo in range(0, n, 5000):
        for i in range(lo, min(n, lo + 5000)):
            writer.submit(synthetic_run(i, start + i * step, rng))
        writer.flush()
        done, took = min(n, lo + 5000), time.perf_counter() - t0
        print(
            f"record ({url.split(':')[0]}): {done:,} / {n:,}, {done / took:,.0f} requests/s",
            file=sys.stderr,
            flush=True,
        )
    writer.close()
    assert writer.written == n and writer.refused == 0 and writer.lost == 0, vars(writer)
    return time.perf_counter() - t0


def pg_megabytes(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return round(row[0] / 1e6)


# -- rendering -----------------------------------------------------------------------------------


def fetch(port: int, path: str) -> tuple[int, float, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t0 = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    took = time.perf_counter() - t0
    conn.close()
    return r.status, took * 1000, body


def time_page(port: int, path: str, repeat: int) -> dict[str, Any]:
    status, cold, _ = fetch(port, path)
    assert status == 200, (path, status)
    warm = [fetch(port, path)[1] for _ in range(repeat)]
    return {"cold_ms": round(cold, 2), "p50_ms": round(statistics.median(warm), 2)}


def cursor_deep(port: int, pages: int) -> str:
    """The path of the page `pages` pages back, by following the `older` links."""
    import re

    path = "/ui/requests"
    for _ in range(pages):
        _, _, body = fetch(port, path)
        found = re.search(rb'href="(/ui/requests\?[^"]*before=[^"]+)">older', body)
        assert found, "no older link"
        path = found.group(1).decode().replace("&amp;", "&")
    return path


def browser_load(port: int, paths: list[str]) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = b.new_page()
        for path in paths:
            page.goto(f"http://127.0.0.1:{port}{path}")  # warm the browser's caches
            times = []
            for _ in range(5):
                page.goto(f"http://127.0.0.1:{port}{path}", wait_until="load")
                times.append(
                    page.evaluate(
                        "() => { const n = performance.getEntriesByType('navigation')[0];"
                        " return n.loadEventEnd - n.startTime; }"
                    )
                )
            out[path] = round(statistics.median(times), 1)
        b.close()
    return out


def render_part(store: str, repeat: int) -> dict[str, Any]:
    port = free_port()
    cfg = Path(tempfile.mkdtemp()) / "render.yaml"
    cfg.write_text(
        f"server: {{host: 127.0.0.1, port: {port}}}\n"
        f'store: {{url: "{store}", retention: {{max_age_days: 0, max_bytes: 0}}}}\n'
        "deployments:\n"
        + "".join(
            f"  {d}: {{kind: openai, base_url: http://127.0.0.1:9/v1, model: m}}\n"
            for d in DEPLOYMENTS
        )
        + "models:\n"
        + "".join(f"  {m}: {{deployments: [{', '.join(DEPLOYMENTS)}]}}\n" for m in MODELS)
    )
    proc = subprocess.Popen(
        [PY, "-m", "turnout", "serve", "--config", str(cfg)],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_up(port)
        _, _, first = fetch(port, "/ui/requests?model=coder")
        import re

        rid = re.search(rb'href="/ui/requests/([0-9a-f]+)"', first)
        assert rid
        trace = f"/ui/requests/{rid.group(1).decode()}"
        deep = cursor_deep(port, 20)
        pages = {
            "requests, first page": "/ui/requests",
            "requests, outcome=failed_upstream": "/ui/requests?outcome=failed_upstream",
            "requests, model + outcome": "/ui/requests?model=coder&outcome=truncated",
            "requests, key": "/ui/requests?key_id=key_07",
            "requests, deployment (json)": "/ui/requests?deployment=edge",
            "requests, intent=rephrase": "/ui/requests?intent=rephrase",
            "requests, last 1h": "/ui/requests?last=1h",
            "requests, 21st page by cursor": deep,
            "a trace": trace,
            "overview feed (JSON)": "/ui/api/overview",
        }
        server = {name: time_page(port, path, repeat) for name, path in pages.items()}
        browser = browser_load(port, ["/ui/requests", trace])
        return {
            "server": server,
            "browser_load_ms": {
                "requests page": browser["/ui/requests"],
                "a trace": browser[trace],
            },
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- cost to the request path --------------------------------------------------------------------


def wrk(port: int, conns: int, seconds: int) -> dict[str, Any]:
    cmd = ["wrk", "-t", "1" if conns == 1 else "2", "-c", str(conns), "-d", f"{seconds}s"]
    cmd += [
        "-s",
        str(REPO / "bench" / "wrk" / "chat.lua"),
        f"http://127.0.0.1:{port}/v1/chat/completions",
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, env=dict(os.environ, BENCH_THREADS=cmd[2])
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))
    data = json.loads(line.removeprefix("BENCH_JSON "))
    assert data["non200"] == 0 and data["bad_body"] == 0, data
    return {
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "p50_ms": data["latency_us"]["p50"] / 1000,
        "p99_ms": data["latency_us"]["p99"] / 1000,
    }


class OpenConsole:
    """Chromium with the overview open (it polls) and the requests page reloaded every 2 s."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.reloads = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OpenConsole:
        self._thread.start()
        self._ready.wait(60)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            overview = b.new_page()
            overview.goto(f"http://127.0.0.1:{self.port}/ui/")
            overview.locator("#overview[data-updates]").wait_for()
            requests = b.new_page()
            self._ready.set()
            while not self._stop.is_set():
                requests.goto(f"http://127.0.0.1:{self.port}/ui/requests")
                self.reloads += 1
                overview.wait_for_timeout(2000)  # also lets the overview's timer run
            b.close()


def cost_part(rounds: int, seconds: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    up_port, port = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [PY, str(REPO / "bench" / "upstream.py"), "--port", str(up_port)],
            stdout=subprocess.DEVNULL,
        )
    ]
    cfg = tmp / "cost.yaml"
    cfg.write_text(
        f"server: {{host: 127.0.0.1, port: {port}}}\n"
        f'store: {{url: "sqlite:///{tmp / "cost.db"}", record_bodies: full}}\n'
        f"deployments:\n  up: {{kind: openai, base_url: http://127.0.0.1:{up_port}/v1, model: m,"
        " rtt_probe_s: 0}\nmodels:\n  bench: {deployments: [up]}\n"
    )
    procs.append(
        subprocess.Popen(
            [PY, "-m", "turnout", "serve", "--config", str(cfg)],
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    res: dict[str, dict[str, list[float]]] = {
        s: {"p50_c1_ms": [], "rps_c32": [], "p99_c32_ms": []} for s in ("closed", "open")
    }
    try:
        wait_up(up_port, "/health")
        wait_up(port)
        wrk(port, 32, 3)  # warm-up
        for r in range(rounds):
            order = ("closed", "open") if r % 2 == 0 else ("open", "closed")
            for state in order:
                if state == "open":
                    with OpenConsole(port):
                        c1, c32 = wrk(port, 1, seconds), wrk(port, 32, seconds)
                else:
                    c1, c32 = wrk(port, 1, seconds), wrk(port, 32, seconds)
                res[state]["p50_c1_ms"].append(c1["p50_ms"])
                res[state]["rps_c32"].append(c32["rps"])
                res[state]["p99_c32_ms"].append(c32["p99_ms"])
                print(
                    f"round {r + 1} {state:<6} c=1 p50 {c1['p50_ms']:.3f} ms  "
                    f"c=32 {c32['rps']:.0f} req/s",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    return res


# -- report --------------------------------------------------------------------------------------


def report(
    command: str, meta: dict[str, Any], render: dict[str, Any] | None, cost: dict[str, Any] | None
) -> str:
    lines = [f"`{command}`", "", "# The console: rendering on a large record, and its cost", ""]
    lines.append(
        f"Run {meta['at']} on {meta['cores']} cores, load average at start {meta['load']}. "
        "Times to the last byte over loopback (server) and to the load event in headless "
        "Chromium (browser)."
    )
    if render:
        stores = list(render)
        sizes = ", ".join(
            f"{STORE_NAMES[k]} {meta['stores'][k]['db_mb']:,} MB, written at "
            f"{meta['records'] / meta['stores'][k]['write_s']:,.0f} requests/s"
            if meta["stores"][k]["write_s"]
            else f"{STORE_NAMES[k]} {meta['stores'][k]['db_mb']:,} MB (kept from an earlier run)"
            for k in stores
        )
        lines += [
            "",
            f"## Rendering on a record of {meta['records']:,} requests",
            "",
            f"Each record built through the store's own `RecordWriter` ({sizes}); PostgreSQL in a "
            "throwaway local cluster with durable commits (bench/pg_cluster.py). Warm p50: the "
            f"median of {meta['repeat']} requests after the cold one.",
            "",
            "| page | "
            + " | ".join(f"{STORE_NAMES[k]} cold ms | {STORE_NAMES[k]} warm p50 ms" for k in stores)
            + " |",
            "|---|" + "---|---|" * len(stores),
        ]
        for name in render[stores[0]]["server"]:
            cells = [
                f"{render[k]['server'][name]['cold_ms']} | {render[k]['server'][name]['p50_ms']}"
                for k in stores
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Warm requests of the overview's feed come within a second of each other and share "
            "one reading of the record (`FRESH_S`): its cold time is the reading itself.",
            "",
            "| in Chromium, navigation → load | "
            + " | ".join(f"{STORE_NAMES[k]} ms" for k in stores)
            + " |",
            "|---|" + "---|" * len(stores),
        ]
        for name in render[stores[0]]["browser_load_ms"]:
            cells = [str(render[k]["browser_load_ms"][name]) for k in stores]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if cost is not None:
        lines += ["", "## Cost to the request path (console closed vs open and polling)", ""]
        carried = cost.get("carried_from")
        if carried:
            lines += [
                f"Not rerun here (`--skip cost`): carried over from the run of {carried['at']} "
                f"(`{carried['command']}`), load average at its start {carried['load']}.",
                "",
            ]
        lines += [
            "| console | p50 at c=1 ms (rounds) | req/s at c=32 (rounds) | p99 at c=32 ms |",
            "|---|---|---|---|",
        ]
        for state in ("closed", "open"):
            c = cost[state]
            lines.append(
                f"| {state} | {statistics.median(c['p50_c1_ms']):.3f} "
                f"({', '.join(f'{x:.3f}' for x in c['p50_c1_ms'])}) | "
                f"{statistics.median(c['rps_c32']):.0f} "
                f"({', '.join(f'{x:.0f}' for x in c['rps_c32'])}) | "
                f"{statistics.median(c['p99_c32_ms']):.1f} |"
            )
        added = statistics.median(cost["open"]["p50_c1_ms"]) - statistics.median(
            cost["closed"]["p50_c1_ms"]
        )
        ratio = statistics.median(cost["open"]["rps_c32"]) / statistics.median(
            cost["closed"]["rps_c32"]
        )
        lines += [
            "",
            f"Added p50 at c=1 with the console open: {added:+.3f} ms; throughput at c=32: "
            f"{(ratio - 1) * 100:+.1f}%. The browser, wrk, the upstream and the gateway share "
            "the machine's cores: part of what the open console costs is Chromium's own CPU.",
        ]
    return "\n".join(lines) + "\n"


def carried_cost() -> dict[str, Any] | None:
    """The cost part of the last results, marked with the run it came from."""
    try:
        last = json.loads((RESULTS / "console.json").read_text())
    except FileNotFoundError:
        return None
    cost = last.get("cost")
    if not cost:
        return None
    if "carried_from" not in cost:
        meta = last["meta"]
        cost["carried_from"] = {"at": meta["at"], "command": last["command"], "load": meta["load"]}
    return dict(cost)


def render_store(kind: str, a: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what was measured, the record's meta) for one store."""
    if kind == "sqlite":
        took = build_sqlite(a.db, a.records)
        meta = {"write_s": round(took, 1), "db_mb": round(a.db.stat().st_size / 1e6)}
        return render_part(f"sqlite:///{a.db}", a.repeat), meta
    sys.path.insert(0, str(REPO / "bench"))
    from pg_cluster import Cluster

    cluster = Cluster()
    try:
        cluster.start()
        url = cluster.create_database("console")
        took = build_record(url, a.records)
        meta = {"write_s": round(took, 1), "db_mb": pg_megabytes(url)}
        return render_part(url, a.repeat), meta
    finally:
        cluster.destroy()


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument(
        "--db", type=Path, default=Path(tempfile.gettempdir()) / "turnout-console-bench.db"
    )
    ap.add_argument(
        "--stores", default="sqlite,postgresql", help="for the render part: sqlite,postgresql"
    )
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--skip", choices=("render", "cost"), help="leave one part out")
    a = ap.parse_args()
    stores = [s.strip() for s in a.stores.split(",") if s.strip()]
    unknown = [s for s in stores if s not in STORE_NAMES]
    if unknown or not stores:
        ap.error(f"--stores: one or more of {', '.join(STORE_NAMES)}, not {a.stores!r}")
    sys.path.insert(0, str(REPO / "src"))
    command = " ".join(
        ["flock /tmp/turnout-bench.lock .venv/bin/python bench/console.py", *sys.argv[1:]]
    )
    meta: dict[str, Any] = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "records": a.records,
        "repeat": a.repeat,
        "stores": {},
    }
    render: dict[str, Any] = {}
    cost = carried_cost() if a.skip == "cost" else None
    if a.skip != "render":
        for kind in stores:
            render[kind], meta["stores"][kind] = render_store(kind, a)
            write(command, meta, render, cost)  # kept should a later part fail
    if a.skip != "cost":
        cost = cost_part(a.rounds, a.seconds)
    print(write(command, meta, render or None, cost))
    return 0


def write(command: str, meta: dict[str, Any], render: Any, cost: Any) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"command": command, "meta": meta, "render": render, "cost": cost}
    (RESULTS / "console.json").write_text(json.dumps(data, indent=2) + "\n")
    text = report(command, meta, render, cost)
    (RESULTS / "console.md").write_text(text)
    return text


if __name__ == "__main__":
    raise SystemExit(main())
