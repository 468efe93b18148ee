"""Fingerprints (baselines, checks with their p-values over time, alarms) and the MCP guard
(tool calls from the record: what it held back, refused, and let through)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from turnout.console.html import Markup, e, join, link, outcome, pill, table, trace_href, when
from turnout.store.fingerprints import AlarmRecord, CheckRecord

ALPHA = 0.05  # drawn as the line below which a check rejects "unchanged"


def _pvalue_chart(checks: list[CheckRecord]) -> Markup:
    """The smallest adjusted p-value of each check, on a log scale, oldest left."""
    w, h, pad = 600, 120, 30
    floor = 1e-6
    n = max(len(checks) - 1, 1)

    def y(p: float) -> float:
        p = min(max(p, floor), 1.0)
        return round(8 + (math.log10(p) / math.log10(floor)) * (h - 16), 1)

    points = " ".join(
        f"{pad + i * (w - pad - 8) / n:.1f},{y(c.min_p)}" for i, c in enumerate(checks)
    )
    dots = join(
        Markup(
            f'<circle cx="{pad + i * (w - pad - 8) / n:.1f}" cy="{y(c.min_p)}" r="3" '
            f'class="{"bad" if c.changed else "ok"}"><title>{e(when(c.at))}: p={c.min_p:.3g}'
            "</title></circle>"
        )
        for i, c in enumerate(checks)
    )
    return Markup(
        f'<svg class="pvalues" viewBox="0 0 {w} {h}" role="img" aria-label="p-values over time">'
        f'<line x1="{pad}" x2="{w - 8}" y1="{y(ALPHA)}" y2="{y(ALPHA)}" class="alpha"/>'
        f'<text x="2" y="{y(ALPHA) + 4}" class="scale">0.05</text>'
        f'<text x="2" y="12" class="scale">1</text>'
        f'<text x="2" y="{h - 4}" class="scale">1e-6</text>'
        f'<polyline points="{points}" class="line"/>{dots}</svg>'
    )


def fingerprints(
    baselines: list[dict[str, Any]], checks: list[CheckRecord], alarms: list[AlarmRecord]
) -> Markup:
    parts = [Markup("<h2>Baselines</h2>")]
    parts.append(
        table(
            ["name", "deployment", "probe run", "created"],
            [[b["name"], b["deployment"], b["run_id"], when(b["created"])] for b in baselines],
            "baselines",
        )
    )
    by_deployment: dict[str, list[CheckRecord]] = defaultdict(list)
    for c in checks:
        by_deployment[c.deployment].append(c)
    for dep, series in sorted(by_deployment.items()):
        last = series[-1]
        verdict = pill("changed" if last.changed else "unchanged", "bad" if last.changed else "ok")
        parts.append(
            Markup(
                f"<h2>{e(dep)}: {len(series)} checks, last {e(when(last.at))} {verdict}</h2>"
                f"{_pvalue_chart(series[-100:])}"
            )
        )
    parts.append(Markup("<h2>Alarms</h2>"))
    parts.append(
        table(
            ["at", "deployment", "kind", "message"],
            [[when(a.at), a.deployment, a.kind, a.message] for a in reversed(alarms[-50:])],
            "alarms",
        )
    )
    if not checks:
        parts.append(
            Markup(
                "<p class=muted>No checks recorded: see <code>fingerprint: watch</code> in the "
                "config, or <code>turnout fingerprint check</code>.</p>"
            )
        )
    return join(parts)


def raised(alarms: list[AlarmRecord]) -> list[dict[str, str]]:
    """Deployments whose latest alarm is raised (not cleared): the overview's fingerprint alarms."""
    latest: dict[str, AlarmRecord] = {}
    for a in alarms:
        latest[a.deployment] = a
    return [
        {"kind": "fingerprint", "subject": dep, "message": a.message}
        for dep, a in sorted(latest.items())
        if a.kind != "cleared"
    ]


def mcp(rows: list[dict[str, Any]]) -> Markup:
    """The newest tool calls the guard recorded (wire `mcp`), by server and tool."""
    if not rows:
        return Markup(
            '<p class="empty">no MCP tool calls in this record: <code>turnout mcp proxy</code> '
            "records them in the store its config names.</p>"
        )
    tally: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    held, refused = [], []
    for r in rows:
        name = (r["model"] or "-").removeprefix("mcp:")
        if r["operation"] == "tool_hold":
            held.append(r)
            continue
        tally[name]["calls"] += 1
        tally[name][r["outcome"]] += 1
        if r["outcome"] in ("blocked", "rejected"):
            refused.append(r)
    parts = [Markup(f"<p class=muted>the newest {len(rows)} tool calls and holds</p>")]
    parts.append(Markup("<h2>Calls by server and tool</h2>"))
    parts.append(
        table(
            ["server/tool", "calls", "completed", "blocked", "rejected", "failed upstream"],
            [
                [
                    name,
                    t["calls"],
                    t["completed"],
                    t["blocked"],
                    t["rejected"],
                    t["failed_upstream"],
                ]
                for name, t in sorted(tally.items())
            ],
            "tools",
        )
    )
    parts.append(Markup("<h2>Held back pending approval</h2>"))
    parts.append(
        table(
            ["at", "server/tool", "why", "trace"],
            [
                [
                    when(r["started"]),
                    r["model"],
                    r["error"] or "-",
                    link(trace_href(r["id"]), r["id"]),
                ]
                for r in held[:50]
            ],
            "held",
        )
    )
    parts.append(Markup("<h2>Refused calls (guard, policy, schema, egress)</h2>"))
    parts.append(
        table(
            ["at", "server/tool", "outcome", "why", "trace"],
            [
                [
                    when(r["started"]),
                    r["model"],
                    outcome(r["outcome"]),
                    r["error"] or "-",
                    link(trace_href(r["id"]), r["id"]),
                ]
                for r in refused[:50]
            ],
            "refused",
        )
    )
    return join(parts)


def lock(state: dict[str, Any]) -> Markup:
    """The lock file's pins and what waits for `turnout mcp approve`, in `diff`'s words."""
    if state.get("config") is None:
        return Markup(
            "<h2>Lock file</h2><p class=muted>No guard config found "
            "(<code>$TURNOUT_MCP_CONFIG</code>, else <code>turnout-mcp.yaml</code> where the "
            "gateway runs): pins are not shown.</p>"
        )
    if "problem" in state:
        return Markup(
            f"<h2>Lock file</h2><p class=problem>{e(state['config'])}: {e(state['problem'])}</p>"
        )
    pinned = table(
        ["server", "package", "pinned at", "tools", "egress shapes"],
        [
            [s["server"], s["package"], s["pinned_at"], ", ".join(s["tools"]) or "-", s["egress"]]
            for s in state["servers"]
        ],
        "pinned",
    )
    held = join(
        Markup(
            f'<div class="held-server"><h3>{e(h["server"])}</h3><pre class="diff">'
            f"{e(chr(10).join(h['words']))}</pre></div>"
        )
        for h in state["held"]
    ) or Markup('<p class="empty">nothing is held back</p>')
    return Markup(
        f'<h2>Pinned in <span title="{e(state["lock"])}">{e(Path(state["lock"]).name)}</span>'
        f"</h2>{pinned}"
        f"<h2>Held back pending approval</h2>{held}"
        "<p class=muted>Lines marked ! block the server until approved: "
        "<code>turnout mcp approve SERVER</code> (or <code>SERVER:TOOL</code>).</p>"
    )
