"""Proxy overhead per `tools/call`: server-everything's `echo`, directly vs through the guard.

Both sessions use the official SDK client over stdio; the proxied one talks to
`turnout mcp proxy` (a separate process, recording every call to SQLite, as in production), which
talks to its own server-everything. Calls alternate in blocks between the two sessions so that
drift on a shared machine falls on both alike.
Run: flock /tmp/turnout-bench.lock .venv/bin/python bench/mcp/bench_proxy.py [--calls 1000]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[2]
EVERYTHING = ROOT / "tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
RESULTS = ROOT / "bench/results"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def timed_calls(client: Client, n: int, out: list[float]) -> None:
    for i in range(n):
        t0 = time.perf_counter()
        await client.call_tool("echo", {"message": f"m{i}"})
        out.append((time.perf_counter() - t0) * 1000)


async def main(calls: int, block: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="turnout-mcp-bench-"))
    config = work / "turnout-mcp.json"
    config.write_text(
        json.dumps(
            {
                "store": {"url": "sqlite:///turnout.db"},
                "mcpServers": {"everything": {"command": "node", "args": [str(EVERYTHING)]}},
            }
        )
    )
    direct_params = StdioServerParameters(command="node", args=[str(EVERYTHING)])
    proxy_params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "turnout", "mcp", "proxy", "--config", str(config), "everything"],
        cwd=str(work),
    )
    direct: list[float] = []
    proxied: list[float] = []
    async with Client(direct_params) as d, Client(proxy_params) as p:
        await timed_calls(d, 100, [])  # warm both paths (JIT, caches, the lock on first use)
        await timed_calls(p, 100, [])
        while len(direct) < calls:
            await timed_calls(d, block, direct)
            await timed_calls(p, block, proxied)
    result = {
        "calls_each": len(direct),
        "direct_ms": summary(direct),
        "proxied_ms": summary(proxied),
        "overhead_ms": {
            k: round(summary(proxied)[k] - summary(direct)[k], 3)
            for k in ("p50", "p90", "p99", "mean")
        },
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
    }
    return result


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(pct(values, 50), 3),
        "p90": round(pct(values, 90), 3),
        "p99": round(pct(values, 99), 3),
        "mean": round(statistics.fmean(values), 3),
    }


def report(r: dict[str, object]) -> str:
    d, p, o = r["direct_ms"], r["proxied_ms"], r["overhead_ms"]  # type: ignore[index]
    rows = [
        "# MCP proxy overhead per tools/call (server-everything `echo`)",
        "",
        f"{r['calls_each']} calls each, alternating blocks, SDK client over stdio; "
        f"proxied = `turnout mcp proxy` (stdio, recording to SQLite). {r['machine']}.",
        "",
        "| path | p50 ms | p90 ms | p99 ms | mean ms |",
        "|---|---:|---:|---:|---:|",
        f"| direct | {d['p50']} | {d['p90']} | {d['p99']} | {d['mean']} |",  # type: ignore[index]
        f"| through turnout | {p['p50']} | {p['p90']} | {p['p99']} | {p['mean']} |",  # type: ignore[index]
        f"| **overhead** | **{o['p50']:+}** | {o['p90']:+} | **{o['p99']:+}** | {o['mean']:+} |",  # type: ignore[index]
        "",
        "Target: ≤ +1 ms p50, ≤ +5 ms p99.",
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
