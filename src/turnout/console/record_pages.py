"""Pages built from the reports the command line prints: intent (`turnout intent report`) and
migrations (`turnout migrate status`), drawn as tables with links into the record."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from turnout.console.html import Markup, e, join, link, pill, table, trace_href, usd, when
from turnout.store.events import MigrationEvent

_GATE = {"pass": "ok", "fail": "bad", "inconclusive": "warn"}
INTENT_WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}
INTENT_GROUPS = ("model", "deployment", "prompt", "route", "key")


def _choices(name: str, options: list[str], chosen: str) -> Markup:
    opts = join(
        Markup(f'<option value="{e(o)}"{" selected" if o == chosen else ""}>{e(o)}</option>')
        for o in options
    )
    return Markup(f'<label>{e(name)}<select name="{e(name)}">{opts}</select></label>')


def intent(report: dict[str, Any], by: str, since: str) -> Markup:
    form = Markup(
        '<form method="get" action="/ui/intent" class="filters">'
        f"{_choices('by', list(INTENT_GROUPS), by)}"
        f"{_choices('since', list(INTENT_WINDOWS), since)}"
        '<span class=buttons><button type="submit">Show</button></span></form>'
    )
    head = (
        f"{report['answers']} answers in the last {since}, {report['missed']} missed "
        f"(a later rephrase, correction or regenerate was about them); "
        f"{report['clarifications']} clarifications asked"
    )
    rows = []
    for g in report["groups"]:
        rate = "-" if g["miss_rate"] is None else f"{g['miss_rate']:.1%}"
        lo, hi = g["interval_95"]
        s = g["signals"]
        rows.append(
            [
                g["group"],
                g["answers"],
                g["missed"],
                rate,
                f"{lo:.1%} – {hi:.1%}",
                s.get("rephrase", 0),
                s.get("correction", 0),
                s.get("regenerate", 0),
                f"{g['negative_feedback']} / {g['feedback']}",
            ]
        )
    header = [by, "answers", "missed", "miss rate", "95% interval", "rephrase"]
    header += ["correction", "regenerate", "negative feedback"]
    groups = table(
        header,
        rows,
        "intent",
    )
    examples = []
    for g in report["groups"]:
        for x in g["examples"]:
            examples.append(
                [
                    g["group"],
                    pill(x["signal"], "warn"),
                    link(trace_href(x["answer_id"]), x["answer_id"]),
                    link(trace_href(x["request_id"]), x["request_id"]),
                    x.get("user_said", "-"),
                ]
            )
    behind = table(
        [by, "signal", "the answer that missed", "the turn that said so", "user said"],
        examples,
        "examples",
    )
    alarms = table(
        [by, "at", "reference rate", "recent rate", "at request"],
        [
            [
                a["group"],
                when(a["at"]),
                f"{a['reference_rate']:.1%}",
                f"{a['recent_rate']:.1%}",
                link(trace_href(a["request_id"]), a["request_id"]),
            ]
            for a in report["alarms"]
        ],
    )
    return Markup(
        f"{form}<p>{e(head)}</p>{groups}<h2>The conversations behind them</h2>{behind}"
        f"<h2>Alarms</h2>{alarms}"
    )


def _evidence(detail: dict[str, Any]) -> str:
    parts = []
    for arm in ("candidate", "old"):
        c = detail.get(arm)
        if c and c.get("n"):
            parts.append(
                f"{arm}: n={c['n']}, success {c['success_rate']:.1%}, p50 {c['latency_p50_ms']} ms"
            )
    gate = detail.get("gate")
    if gate:
        parts.append(str(gate.get("summary", "")))
    return "; ".join(parts) or "-"


def migrations(report: dict[str, Any], replays: list[MigrationEvent] | None = None) -> Markup:
    out = [_replays(replays or [])]
    if not report:
        out.insert(
            0,
            Markup(
                '<p class="empty">no canary or shadow recorded '
                "(see <code>migrate:</code> in the config)</p>"
            ),
        )
        return join(out)
    for model, entry in report.items():
        for c in entry["canaries"]:
            where = (
                "starts over at the gateway's next start"
                if c["status"] == "reset"
                else f"stage {c['stage']} of {len(c['stages'])}, {c['percent']:g}% of traffic"
            )
            kind = {"running": "warn", "completed": "ok"}.get(c["status"], "bad")
            stages = " → ".join(f"{s:g}%" for s in c["stages"]) or "-"
            events = table(
                ["at", "event", "stage", "percent", "evidence and verdict", "reason"],
                [
                    [
                        when(ev["at"]),
                        ev["kind"],
                        "-" if ev["stage"] is None else ev["stage"] + 1,
                        "-" if ev["percent"] is None else f"{ev['percent']:g}%",
                        _evidence(ev["detail"]),
                        ev["detail"].get("reason") or "-",
                    ]
                    for ev in c["events"]
                ],
            )
            now = "" if c["current"] is None else f"<p>now: {e(_evidence(c['current']))}</p>"
            out.append(
                Markup(
                    f"<h2>{e(model)}: canary on {e(c['candidate'])} "
                    f"{pill(c['status'], kind)}</h2><p>{e(where)}; stages {e(stages)}</p>"
                    f"{now}{events}"
                )
            )
        if entry["shadows"]:
            rows = [
                [
                    s["candidate"],
                    s["shadows"],
                    s["completed"],
                    usd(s["spent_usd"]),
                    "-" if s["budget_usd"] is None else f"${s['budget_usd']:g}",
                    "mirroring"
                    if not s["budget_spent_at"]
                    else f"stopped {when(s['budget_spent_at'])}",
                ]
                for s in entry["shadows"]
            ]
            shadows = table(["candidate", "shadows", "completed", "spent", "budget", "state"], rows)
            out.append(Markup(f"<h2>{e(model)}: shadows</h2>{shadows}"))
    out.append(out.pop(0))  # the replay reports after the canaries and shadows
    return join(out)


def _report_link(ev: MigrationEvent) -> Markup:
    """The file's name as the link, its whole path when the pointer rests on it."""
    path = str(ev.detail.get("path", "report"))
    return Markup(
        f'<a href="/ui/migrations/report/{ev.at!r}" title="{e(path)}">{e(PurePath(path).name)}</a>'
    )


def _replays(events: list[MigrationEvent]) -> Markup:
    rows = [
        [
            when(ev.at),
            ev.model,
            ev.candidate,
            ev.detail.get("pairs", "-"),
            pill(str(ev.detail.get("gate", "-")), _GATE.get(ev.detail.get("gate", ""), "warn")),
            _report_link(ev),
        ]
        for ev in reversed(events)
    ]
    return Markup(
        "<h2>Replay reports</h2>"
        + table(["at", "from", "to", "pairs", "gate", "report"], rows, "replays")
        + "<p class=muted>Listed when <code>turnout migrate replay --html FILE</code> ran "
        "against this record; the link opens the report while the file is still there.</p>"
    )
