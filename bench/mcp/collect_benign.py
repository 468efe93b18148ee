"""Write bench/mcp/corpus/benign.json: the tool definitions of real, public MCP servers.

Reference servers from npm (tests/mcp/node_modules), other public servers from npm
(bench/mcp/node_modules) and the Python reference servers from PyPI (bench/.venv-mcpref), each
launched and listed through turnout's own snapshot code. Install them first:
    npm ci --prefix tests/mcp && npm ci --prefix bench/mcp
    python3 -m venv bench/.venv-mcpref && bench/.venv-mcpref/bin/pip install \
        mcp-server-fetch==2026.10.24 mcp-server-time==2026.10.19 mcp-server-git==2026.10.19
Run: .venv/bin/python bench/mcp/collect_benign.py
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from turnout.mcp.config import ServerSpec
from turnout.mcp.snapshot import observe

ROOT = Path(__file__).resolve().parents[2]
TESTS_NM = ROOT / "tests/mcp/node_modules"
BENCH_NM = ROOT / "bench/mcp/node_modules/.bin"
PYREF = ROOT / "bench/.venv-mcpref/bin"
OUT = Path(__file__).parent / "corpus" / "benign.json"

SERVERS = {
    # reference servers: the target is 0 false positives on these
    "everything": (
        "reference",
        ["node", str(TESTS_NM / "@modelcontextprotocol/server-everything/dist/index.js")],
        {},
    ),
    "filesystem": (
        "reference",
        ["node", str(TESTS_NM / "@modelcontextprotocol/server-filesystem/dist/index.js"), "/tmp"],
        {},
    ),
    "memory": (
        "reference",
        ["node", str(TESTS_NM / "@modelcontextprotocol/server-memory/dist/index.js")],
        {},
    ),
    "sequential-thinking": (
        "reference",
        ["node", str(TESTS_NM / "@modelcontextprotocol/server-sequential-thinking/dist/index.js")],
        {},
    ),
    "fetch": ("reference", [str(PYREF / "mcp-server-fetch")], {}),
    "time": ("reference", [str(PYREF / "mcp-server-time")], {}),
    "git": ("reference", [str(PYREF / "mcp-server-git"), "--repository", str(ROOT)], {}),
    # other public servers
    "github": (
        "public",
        [str(BENCH_NM / "mcp-server-github")],
        {"GITHUB_PERSONAL_ACCESS_TOKEN": "unused"},
    ),
    "notion": ("public", [str(BENCH_NM / "notion-mcp-server")], {}),
    "playwright": ("public", [str(BENCH_NM / "playwright-mcp"), "--headless"], {}),
    "context7": ("public", [str(BENCH_NM / "context7-mcp")], {}),
}


async def main() -> int:
    corpus = []
    for name, (group, argv, env) in SERVERS.items():
        spec = ServerSpec(name, "stdio", argv[0], tuple(argv[1:]), env=env)
        try:
            obs = await observe(spec, timeout=60)
        except Exception as exc:  # a server that will not start is left out, and said so
            print(f"{name}: skipped ({exc!r})", file=sys.stderr)
            continue
        package = f"{obs.package.get('name')} {obs.package.get('version')}"
        print(f"{name}: {len(obs.tools)} tools ({package})")
        for definition in obs.tools.values():
            corpus.append({"group": group, "server": name, "tool": definition})
        if obs.instructions:
            corpus.append({"group": group, "server": name, "instructions": obs.instructions})
    OUT.write_text(json.dumps(corpus, indent=1, ensure_ascii=True) + "\n")
    print(f"wrote {len(corpus)} benign entries to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
