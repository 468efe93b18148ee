"""The overview's alarms that live in the record: budgets, canaries, intent.

Each is a pure function of what the store returned, so the page's worker thread does the reading
and these only decide what is raised now.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from turnout.migrate.events import MigrationEvent
from turnout.store.keys import KeyEvent, KeyRecord

Alarm = dict[str, str]
INTENT_WINDOW_S = 3600.0  # the intent alarms of the last hour count as raised now


def budget(keys: Iterable[tuple[KeyRecord, list[KeyEvent]]]) -> list[Alarm]:
    """Keys that crossed their alert line this period (their events since the period began)."""
    out = []
    for key, events in keys:
        alerts = [e for e in events if e.kind == "budget_alert"]
        if not alerts or key.revoked is not None:
            continue
        d = alerts[-1].detail
        spent, limit = d.get("spent_usd"), d.get("budget_usd")
        what = (
            f"spent ${spent:.4f} of its ${limit:g} budget this period"
            if isinstance(spent, int | float) and isinstance(limit, int | float)
            else "crossed its budget alert this period"
        )
        out.append({"kind": "budget", "subject": key.name or key.id, "message": what})
    return out


def canary(events: list[MigrationEvent]) -> list[Alarm]:
    """Canaries whose latest event is a rollback: the gate failed and the old model is back."""
    latest: dict[tuple[str, str], MigrationEvent] = {}
    for ev in events:  # oldest first
        if ev.mode == "canary":
            latest[(ev.model, ev.candidate)] = ev
    out = []
    for (model, candidate), ev in sorted(latest.items()):
        if ev.kind != "rolled_back":
            continue
        gate = ev.detail.get("gate") or {}
        why = ev.detail.get("reason") or gate.get("summary") or "the gate failed"
        stage = "" if ev.stage is None else f" at stage {ev.stage + 1}"
        out.append(
            {
                "kind": "canary",
                "subject": f"{model} → {candidate}",
                "message": f"rolled back{stage}: {why}",
            }
        )
    return out


def intent(report_alarms: list[dict[str, Any]], since: float) -> list[Alarm]:
    """Each group's latest rise in miss rate, if it came after `since`."""
    latest: dict[str, dict[str, Any]] = {}
    for a in report_alarms:
        if a["at"] >= since:
            latest[a["group"]] = a
    return [
        {
            "kind": "intent",
            "subject": group,
            "message": f"miss rate rose from {a['reference_rate']:.1%} to "
            f"{a['recent_rate']:.1%} (at request {a['request_id']})",
        }
        for group, a in sorted(latest.items())
    ]
