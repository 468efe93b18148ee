"""Proxy overhead per `tools/call`: server-everything's `echo`, directly vs through the guard.

Every session uses the official SDK client over stdio; a proxied one talks to `turnout mcp
proxy` (a separate process, recording every call to SQLite, as in production), which talks to its
own server-everything. Two guards: the defaults (egress enforced: the server runs with the Node
hook and the egress recorder) and `egress: off`. Calls alternate in blocks between the sessions
so that drift on a shared machine falls on all alike.
Run: flock /tmp/turnout-bench.lock .venv/bin/python bench/mcp/bench_proxy.py [--calls 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[2]
EVERYTHING = ROOT / "tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
POSTMARK = ROOT / "tests/mcp/fixtures/postmark-1.0.15/server.mjs"
MAIL_API = ROOT / "examples/mcp_guard/mail_api.py"
RESULTS = ROOT / "bench/results"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


Call = tuple[str, dict[str, Any]]
ECHO: Call = ("echo", {"message": "m"})
SEND: Call = ("send_email", {"to": "friend@example.com", "subject": "s", "textBody": "b"})


async def timed_calls(client: Client, call: Call, n: int, out: list[float]) -> None:
    tool, args = call
    for _ in range(n):
        t0 = time.perf_counter()
        result = await client.call_tool(tool, args)
        out.append((time.perf_counter() - t0) * 1000)
        assert not result.is_error, result


def guard_config(work: Path, name: str, server: dict[str, Any]) -> Path:
    config = work / f"turnout-mcp-{name}.json"
    doc = {
        "lock": f"mcp-{name}.lock",
        "store": {"url": "sqlite:///turnout.db"},
        "mcpServers": {name: server},
    }
    config.write_text(json.dumps(doc))
    return config


def proxy(config: Path, name: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "turnout", "mcp", "proxy", "--config", str(config), name],
        cwd=str(config.parent),
        env=dict(os.environ),
    )


@contextlib.contextmanager
def email_api() -> Iterator[str]:
    """The example's loopback email API, in its own process so it takes no time from ours."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = subprocess.Popen(
        [sys.executable, str(MAIL_API), "--port", str(port)], stdout=subprocess.DEVNULL
    )
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        api.terminate()
        api.wait(10)


async def approved_mail_proxy(work: Path, url: str) -> StdioServerParameters:
    """The default guard for the mail server, with what send_email sends approved by a person."""
    from turnout.mcp.commands import approve, lock_servers
    from turnout.mcp.config import load_guard_config

    server = {"command": "node", "args": [str(POSTMARK)], "env": {"POSTMARK_API_URL": url}}
    config = load_guard_config(guard_config(work, "mail", server))
    await lock_servers(config, [], update=False)
    async with Client(proxy(Path(config.source), "mail")) as held:
        assert (await held.call_tool(*SEND)).is_error  # held until approved: the default
    await approve(config, ["mail:send_email"])
    return proxy(Path(config.source), "mail")


async def main(calls: int, block: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="turnout-mcp-bench-"))
    everything = {"command": "node", "args": [str(EVERYTHING)]}
    default = guard_config(work, "everything", everything)
    (work / "off").mkdir()
    off = guard_config(work / "off", "everything", {**everything, "guard": {"egress": "off"}})
    times: dict[str, list[float]] = {name: [] for name in PATHS}
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    with email_api() as url:
        mail_proxy = await approved_mail_proxy(work, url)
        direct_mail = StdioServerParameters(
            command="node", args=[str(POSTMARK)], env={"POSTMARK_API_URL": url}
        )
        async with (
            Client(StdioServerParameters(command="node", args=[str(EVERYTHING)])) as d,
            Client(proxy(default, "everything")) as p,
            Client(proxy(off, "everything")) as q,
            Client(direct_mail) as dm,
            Client(mail_proxy) as pm,
        ):
            sessions = {
                "direct": (d, ECHO),
                "default": (p, ECHO),
                "egress_off": (q, ECHO),
                "mail_direct": (dm, SEND),
                "mail_default": (pm, SEND),
            }
            for client, call in sessions.values():  # warm every path (JIT, caches, pins)
                await timed_calls(client, call, 100, [])
            while len(times["direct"]) < calls:
                for name, (client, call) in sessions.items():
                    await timed_calls(client, call, block, times[name])
                print(f"  {len(times['direct'])}/{calls} calls each", file=sys.stderr, flush=True)
    stats = {name: summary(values) for name, values in times.items()}
    return {
        "calls_each": len(times["direct"]),
        **{f"{name}_ms": stats[name] for name in PATHS},
        "overhead_ms": _overhead(stats["default"], stats["direct"]),
        "overhead_egress_off_ms": _overhead(stats["egress_off"], stats["direct"]),
        "overhead_sending_ms": _overhead(stats["mail_default"], stats["mail_direct"]),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "command": COMMAND,
    }


PATHS = ("direct", "default", "egress_off", "mail_direct", "mail_default")
COMMAND = "flock /tmp/turnout-bench.lock .venv/bin/python bench/mcp/bench_proxy.py --calls 1000"


def _overhead(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: round(a[k] - b[k], 3) for k in ("p50", "p90", "p99", "mean")}


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(pct(values, 50), 3),
        "p90": round(pct(values, 90), 3),
        "p99": round(pct(values, 99), 3),
        "mean": round(statistics.fmean(values), 3),
    }


def report(r: dict[str, Any]) -> str:
    def row(label: str, s: dict[str, float]) -> str:
        return f"| {label} | {s['p50']} | {s['p90']} | {s['p99']} | {s['mean']} |"

    def gain(label: str, o: dict[str, float]) -> str:
        return f"| {label} | **{o['p50']:+}** | {o['p90']:+} | **{o['p99']:+}** | {o['mean']:+} |"

    rows = [
        "# MCP proxy overhead per tools/call (server-everything `echo`)",
        "",
        f"{r['calls_each']} calls each, alternating blocks, SDK client over stdio; "
        f"proxied = `turnout mcp proxy` (stdio, recording to SQLite). {r['machine']}.",
        f"Load average (1 min) at start and end: {r['load_average_1m'][0]}, "
        f"{r['load_average_1m'][1]} on {os.cpu_count()} cores.",
        f"Reproduce: `{r['command']}`",
        "",
        "| path | p50 ms | p90 ms | p99 ms | mean ms |",
        "|---|---:|---:|---:|---:|",
        row("`echo`, direct", r["direct_ms"]),
        row("`echo` through turnout, defaults (egress: enforce)", r["default_ms"]),
        row("`echo` through turnout, egress: off", r["egress_off_ms"]),
        gain("**overhead, defaults**", r["overhead_ms"]),
        gain("**overhead, egress: off**", r["overhead_egress_off_ms"]),
        row("`send_email` (one POST to a loopback API), direct", r["mail_direct_ms"]),
        row("`send_email` through turnout, defaults, its POST approved", r["mail_default_ms"]),
        gain("**overhead of a call that sends, defaults**", r["overhead_sending_ms"]),
        "",
        "`echo` sends nothing out: its default row costs the Node hook loaded in the server and",
        "the per-call bookkeeping. `send_email` (the postmark-1.0.15 test fixture) makes one",
        "HTTP request per call, which the hook stops and has judged by the guard before it leaves.",
        "Target: ≤ +1 ms p50, ≤ +5 ms p99 for a call that sends nothing.",
        "",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--block", type=int, default=100)
    args = parser.parse_args()
    result = anyio.run(main, args.calls, args.block)
    text = report(result)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mcp_proxy_overhead.md").write_text(text)
    (RESULTS / "mcp_proxy_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
