"""Scan results for people (a table per server) and for machines (JSON)."""

from __future__ import annotations

import json

from turnout.mcp.scanner.scan import ScanResult
from turnout.mcp.visible import json_visible, visible

_MARK = {"high": "HIGH", "medium": "MED ", "low": "low "}


def render_text(result: ScanResult) -> str:
    """A table per server; what a server wrote is shown with its hiding characters named."""
    lines: list[str] = []
    for name, info in result.servers.items():
        if info["status"] != "ok":
            lines.append(f"{name}: {info['status']} ({info.get('why')})")
            continue
        mine = [f for f in result.findings if f.server == name]
        lines.append(f"{name}: {info['tools']} tools, {info['package']} — {len(mine)} finding(s)")
        for f in mine:
            where = f"{f.tool}." if f.tool else ""
            lines.append(f"  {_MARK[f.severity]}  {f.rule:<24} {where}{f.where}: {f.message}")
            if f.excerpt:
                lines.append(f"        {visible(f.excerpt)[:160]}")
    counts = {s: sum(f.severity == s for f in result.findings) for s in ("high", "medium", "low")}
    lines.append("")
    lines.append(
        f"{len(result.servers)} server(s) scanned: {counts['high']} high, {counts['medium']} "
        f"medium, {counts['low']} low; nothing was sent anywhere."
    )
    for error in result.errors:
        lines.append(f"error: {error}")
    return "\n".join(visible(line) for line in lines) + "\n"


def render_json(result: ScanResult) -> str:
    return (
        json_visible(
            json.dumps(
                {
                    "servers": result.servers,
                    "findings": [f.as_json() for f in result.findings],
                    "errors": result.errors,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        + "\n"
    )
