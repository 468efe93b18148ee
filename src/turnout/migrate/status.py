"""`turnout migrate status`: where each model's canary and shadow stand, read from the record.

Works with the gateway running or stopped: stage changes and their evidence are migration events,
and the current stage's evidence is rebuilt from the requests it placed, then judged by the gate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

import orjson

from turnout.config.schema import CanaryGate
from turnout.migrate.events import MigrationEvent, read_events
from turnout.store.read import ShadowTotal, open_reader


def add_status_parser(sub: Any) -> None:
    st = sub.add_parser("status", help="canary stages and shadow pairs, from the record")
    st.add_argument("--config", help="config file whose store to read")
    st.add_argument("--store", help="store URL, e.g. sqlite:///turnout.db")
    st.add_argument("--model", help="only this logical model")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_status)


def add_reset_parser(sub: Any) -> None:
    rs = sub.add_parser(
        "reset",
        help="start a model's canary over from its first stage (at the gateway's next start)",
    )
    rs.add_argument("model", help="the logical model")
    rs.add_argument("--candidate", required=True, help="the canary's candidate deployment")
    rs.add_argument("--config", help="config file whose store to write")
    rs.add_argument("--store", help="store URL, e.g. sqlite:///turnout.db")
    rs.set_defaults(func=cmd_reset)


def cmd_reset(args: argparse.Namespace) -> int:
    from turnout.migrate.events import EventLog

    log = EventLog(_url(args))
    log.open()
    try:
        last = log.latest(args.model, "canary", args.candidate)
        if last is None:
            raise LookupError(f"no canary of {args.model!r} on {args.candidate!r} in the record")
        log.append(args.model, "canary", args.candidate, "reset", detail={"was": last.kind})
    finally:
        log.close()
    print(
        f"canary of {args.model} on {args.candidate} reset (was {last.kind}); "
        "it starts over at its first stage when the gateway next starts"
    )
    return 0


def _url(args: argparse.Namespace) -> str:
    if args.store:
        return str(args.store)
    from turnout.cli import _load

    return _load(args.config).store.url


def status(url: str, model: str | None = None) -> dict[str, Any]:
    """{model: {"canaries": [...], "shadows": [...]}} for every model with migration events or
    shadow records."""
    events = read_events(url, model, limit=10_000)
    out: dict[str, Any] = {}
    by_key: dict[tuple[str, str, str], list[MigrationEvent]] = {}
    for e in events:
        by_key.setdefault((e.model, e.mode, e.candidate), []).append(e)
    for (name, mode, candidate), evs in by_key.items():
        if mode == "canary":
            entry = out.setdefault(name, {"canaries": [], "shadows": []})
            entry["canaries"].append(_canary(url, name, candidate, evs))
    for total in _shadow_totals(url, model):
        entry = out.setdefault(total.model, {"canaries": [], "shadows": []})
        stops = by_key.get((total.model, "shadow", total.candidate), [])
        entry["shadows"].append(
            {
                "candidate": total.candidate,
                "shadows": total.shadows,
                "completed": total.completed,
                "spent_usd": total.spent_usd,
                "budget_spent_at": stops[-1].at if stops else None,
                "budget_usd": stops[-1].detail.get("budget_usd") if stops else None,
            }
        )
    return out


def _canary(url: str, model: str, candidate: str, evs: list[MigrationEvent]) -> dict[str, Any]:
    from turnout.intent.report import missed_since
    from turnout.migrate.canary import COMPLETED, ROLLED_BACK, RUNNING, stage_observations
    from turnout.migrate.evidence import counts, judge, look_alpha

    starts = [e for e in evs if e.kind == "started"]
    settings = starts[-1].detail.get("settings", {}) if starts else {}
    last = evs[-1]
    state = {"rolled_back": ROLLED_BACK, "completed": COMPLETED, "reset": "reset"}.get(
        last.kind, RUNNING
    )
    stages = settings.get("stages") or []
    current: dict[str, Any] | None = None
    if state == RUNNING and last.stage is not None:
        obs = stage_observations(url, model, candidate, last.stage, last.at)
        missed = missed_since(url, last.at)  # the intent guardrail, as the live canary has it
        old = [o for o in obs if o.arm == "old"]
        cand = [o for o in obs if o.arm == "candidate"]
        gate = CanaryGate(**settings["gate"]) if "gate" in settings else CanaryGate()
        alpha = look_alpha(gate, len(stages))
        verdict = judge(old, cand, gate, alpha, missed) if cand and old else None
        current = {
            "candidate": counts(cand, missed),
            "old": counts(old, missed),
            "gate": None if verdict is None else verdict.as_dict(),
        }
    return {
        "candidate": candidate,
        "status": state,
        "stage": None if last.stage is None else last.stage + 1,
        "stages": stages,
        "percent": last.percent,
        "since": last.at,
        "events": [e.as_dict() for e in evs],
        "current": current,
    }


def _shadow_totals(url: str, model: str | None) -> list[ShadowTotal]:
    with open_reader(url) as reader:
        return reader.shadow_totals(model)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


def _evidence(detail: dict[str, Any]) -> str:
    parts = []
    for arm in ("candidate", "old"):
        c = detail.get(arm)
        if c and c.get("n"):
            parts.append(
                f"{arm} n={c['n']} success={c['success_rate']:.1%} p50={c['latency_p50_ms']} ms"
            )
    gate = detail.get("gate")
    if gate:
        parts.append(gate["summary"])
    return "; ".join(parts)


def render(report: dict[str, Any]) -> str:
    if not report:
        return "no canary or shadow recorded"
    lines: list[str] = []
    for model, entry in report.items():
        for c in entry["canaries"]:
            stages = "/".join(f"{s:g}" for s in c["stages"]) or "?"
            where = (
                "starts over at the gateway's next start"
                if c["status"] == "reset"
                else f"stage {c['stage']} of {len(c['stages'])} ({c['percent']:g}% now)"
            )
            lines.append(
                f"{model}: canary on {c['candidate']} — {c['status']}, {where}; stages {stages}%"
            )
            for e in c["events"]:
                stage = f"stage {e['stage'] + 1}" if e["stage"] is not None else ""
                pct = "" if e["percent"] is None else f"{e['percent']:g}%"
                lines.append(
                    f"  {_when(e['at'])}  {e['kind']:<11} {stage:<8} {pct:>5}  "
                    f"{_evidence(e['detail'])}"
                )
                if e["detail"].get("reason"):
                    lines.append(f"      reason: {e['detail']['reason']}")
            if c["current"] is not None:
                lines.append(f"  now: {_evidence(c['current']) or 'no evidence yet'}")
        for s in entry["shadows"]:
            budget = (
                f"; budget ${s['budget_usd']:g} spent at {_when(s['budget_spent_at'])}, mirroring "
                "stopped"
                if s["budget_spent_at"]
                else ""
            )
            lines.append(
                f"{model}: shadow on {s['candidate']} — {s['shadows']} shadow requests "
                f"({s['completed']} completed), ${s['spent_usd']:.6f} spent{budget}"
            )
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    report = status(_url(args), args.model)
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render(report))
    return 0
