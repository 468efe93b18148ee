"""`turnout intent report`: how often answers missed what users meant, per group, from the record.

An answer is a recorded chat request that completed; it *missed* when a later request's rephrase,
correction or regenerate is attributed to it (by the conversation hash it left). Rates come with
Wilson 95% intervals; negative explicit feedback is counted beside them; the alarm replays each
group's answers in order through the miss-rate CUSUM.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from turnout.intent.alarm import MissAlarm
from turnout.intent.conversation import text_of
from turnout.intent.signals import MISSES, Signal
from turnout.store.feedback import Feedback

GROUPS = ("model", "deployment", "prompt", "route", "key")
_ANSWERED = frozenset({"completed", "truncated"})
NEGATIVE_LABELS = frozenset({"wrong_answer", "misunderstood"})
_EXAMPLES = 5


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def served_by(row: dict[str, Any]) -> str | None:
    attempts = row.get("attempt_log") or []
    done = [a for a in attempts if isinstance(a, dict) and a.get("ok")]
    return done[-1].get("deployment") if done else None


def route_of(row: dict[str, Any]) -> str:
    migration = row.get("migration") or {}
    placed = migration.get("canary") if isinstance(migration, dict) else None
    if isinstance(placed, dict):
        return f"canary:{placed.get('arm')}"
    intent = (row.get("attrs") or {}).get("intent") or {}
    if intent.get("escalated_to"):
        return "escalated"
    return "default"


def group_of(row: dict[str, Any], by: str) -> str:
    attrs = row.get("attrs") or {}
    value = {
        "model": row.get("model"),
        "deployment": served_by(row),
        "prompt": attrs.get("prompt"),
        "route": route_of(row),
        "key": row.get("key_id"),
    }[by]
    return str(value) if value is not None else "-"


@dataclass(slots=True)
class Group:
    name: str
    answers: int = 0
    missed: int = 0  # answers with at least one miss attributed
    signals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    negative_feedback: int = 0
    feedback: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        lo, hi = wilson(self.missed, self.answers)
        return {
            "group": self.name,
            "answers": self.answers,
            "missed": self.missed,
            "miss_rate": self.missed / self.answers if self.answers else None,
            "interval_95": [lo, hi],
            "signals": dict(self.signals),
            "feedback": self.feedback,
            "negative_feedback": self.negative_feedback,
            "examples": self.examples,
        }


def attribute(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(signal row, the answer row it is about, or None when that answer is not in `rows`)."""
    by_prefix: dict[str, list[dict[str, Any]]] = defaultdict(list)
    out = []
    for row in rows:  # oldest first: an answer is always before the turn that follows it
        attrs = row.get("attrs") or {}
        intent = attrs.get("intent") or {}
        signals = [s for s in intent.get("signals") or () if s in MISSES]
        if signals:
            prefix = (
                attrs.get("conversation_prefix")
                if signals[0] == Signal.REGENERATE
                else intent.get("answer_prefix")
            )
            earlier = by_prefix.get(prefix or "", [])
            out.append((row, earlier[-1] if earlier else None))
        if row.get("outcome") in _ANSWERED and attrs.get("conversation_prefix"):
            by_prefix[attrs["conversation_prefix"]].append(row)
    return out


def missed_since(url: str, since: float) -> set[str] | None:
    """Ids of answers recorded from `since` on that a later turn showed missed; None when the
    record holds no conversations (intent detection off)."""
    from turnout.store.errors import NoRecordStore
    from turnout.store.read import open_reader

    try:
        with open_reader(url) as reader:
            rows = reader.conversations(since=since)
    except NoRecordStore:
        return None
    if not rows:
        return None
    return {answer["id"] for _, answer in attribute(rows) if answer is not None}


def last_user_text(row: dict[str, Any]) -> str | None:
    body = row.get("request_body")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
    return text_of(users[-1].get("content"))[:200] if users else None


def build(
    rows: list[dict[str, Any]], feedback: Iterable[Feedback], by: str = "model"
) -> dict[str, Any]:
    groups: dict[str, Group] = {}
    answers = [r for r in rows if r.get("outcome") in _ANSWERED]
    for row in answers:
        name = group_of(row, by)
        groups.setdefault(name, Group(name)).answers += 1
    missed_ids: set[str] = set()
    unattributed = 0
    clarifications = sum(
        1
        for r in rows
        if Signal.CLARIFICATION
        in (((r.get("attrs") or {}).get("intent") or {}).get("signals") or ())
    )
    for signal_row, answer in attribute(rows):
        if answer is None:
            unattributed += 1
            continue
        g = groups.setdefault(group_of(answer, by), Group(group_of(answer, by)))
        kind = signal_row["attrs"]["intent"]["signals"][0]
        g.signals[kind] += 1
        if answer["id"] not in missed_ids:
            missed_ids.add(answer["id"])
            g.missed += 1
        if len(g.examples) < _EXAMPLES:
            example = {"signal": kind, "request_id": signal_row["id"], "answer_id": answer["id"]}
            text = last_user_text(signal_row)
            if text is not None:
                example["user_said"] = text
            g.examples.append(example)
    answer_group = {r["id"]: group_of(r, by) for r in answers}
    for item in feedback:
        name = answer_group.get(item.request_id or "")
        if name is None:
            continue
        groups[name].feedback += 1
        negative = (item.score is not None and item.score < 0) or item.label in NEGATIVE_LABELS
        groups[name].negative_feedback += int(negative)
    alarm = MissAlarm()
    alarms = []
    for row in answers:  # in the order they were answered
        shift = alarm.update(answer_group[row["id"]], row["id"] in missed_ids)
        if shift is not None:
            alarms.append(
                {
                    "group": answer_group[row["id"]],
                    "at": row["started"],
                    "request_id": row["id"],
                    "reference_rate": shift.reference,
                    "recent_rate": shift.recent,
                }
            )
    ordered = sorted(groups.values(), key=lambda g: (-g.answers, g.name))
    return {
        "by": by,
        "answers": len(answers),
        "missed": len(missed_ids),
        "unattributed_signals": unattributed,
        "clarifications": clarifications,
        "groups": [g.as_dict() for g in ordered],
        "alarms": alarms,
    }


def text(report: dict[str, Any]) -> str:
    lines = [
        f"{report['answers']} answers, {report['missed']} missed; by {report['by']}"
        + (
            f"; {report['unattributed_signals']} signals about answers outside the window"
            if report["unattributed_signals"]
            else ""
        ),
        "",
        f"{report['by']:<24} {'answers':>8} {'missed':>7} {'rate':>7}  {'95% interval':<15} "
        f"{'rephr':>5} {'corr':>5} {'regen':>5} {'fb-':>4}",
    ]
    for g in report["groups"]:
        rate = "-" if g["miss_rate"] is None else f"{g['miss_rate']:.1%}"
        lo, hi = g["interval_95"]
        s = g["signals"]
        lines.append(
            f"{g['group'][:24]:<24} {g['answers']:>8} {g['missed']:>7} {rate:>7}  "
            f"{lo:.1%}–{hi:.1%}{'':<3} {s.get('rephrase', 0):>5} {s.get('correction', 0):>5} "
            f"{s.get('regenerate', 0):>5} {g['negative_feedback']:>4}"
        )
    for a in report["alarms"]:
        lines.append(
            f"ALARM {a['group']}: miss rate rose from {a['reference_rate']:.1%} to "
            f"{a['recent_rate']:.1%} (at request {a['request_id']})"
        )
    return "\n".join(lines)


def html_page(report: dict[str, Any]) -> str:
    e = html.escape
    rows = []
    for g in report["groups"]:
        lo, hi = g["interval_95"]
        rate = g["miss_rate"] or 0.0
        bar = (
            f'<svg width="200" height="12"><rect width="{200 * hi:.1f}" x="0" height="12" '
            f'fill="#ddd"/><rect x="{200 * lo:.1f}" width="{200 * (hi - lo):.1f}" height="12" '
            f'fill="#9bd"/><rect x="{200 * rate:.1f}" width="2" height="12" fill="#036"/></svg>'
        )
        examples = "<br>".join(
            e(
                f"{x['signal']}: {x['request_id']} → {x['answer_id']}"
                + (f" — “{x['user_said']}”" if "user_said" in x else "")
            )
            for x in g["examples"]
        )
        rows.append(
            f"<tr><td>{e(g['group'])}</td><td>{g['answers']}</td><td>{g['missed']}</td>"
            f"<td>{rate:.1%} ({lo:.1%}–{hi:.1%})</td><td>{bar}</td>"
            f"<td>{e(str(g['signals']))}</td><td>{g['negative_feedback']}/{g['feedback']}</td>"
            f"<td><small>{examples}</small></td></tr>"
        )
    alarms = "".join(
        f"<li>{e(a['group'])}: {a['reference_rate']:.1%} → {a['recent_rate']:.1%}</li>"
        for a in report["alarms"]
    )
    return (
        "<!doctype html><meta charset=utf-8><title>turnout intent report</title>"
        "<style>body{font:14px sans-serif}"
        "td,th{padding:4px 8px;border-bottom:1px solid #eee}</style>"
        f"<h1>Answers that missed, by {e(report['by'])}</h1>"
        f"<p>{report['answers']} answers, {report['missed']} missed.</p>"
        "<table><tr><th>group</th><th>answers</th><th>missed</th><th>rate (95%)</th><th></th>"
        "<th>signals</th><th>negative feedback</th><th>conversations</th></tr>"
        + "".join(rows)
        + "</table>"
        + (f"<h2>Alarms</h2><ul>{alarms}</ul>" if alarms else "")
    )
