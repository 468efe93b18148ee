"""`/ui/requests/{id}`: one request's trace — its states, attempts, routing, findings, bodies."""

from __future__ import annotations

from typing import Any

import orjson

from turnout.console.html import Markup, e, join, link, ms, outcome, pill, table, usd, when
from turnout.store.read import Request

_W = 960  # the timeline's drawing width, in SVG units
_LEFT = 110  # room for the lane labels
MAX_BODY_CHARS = 256 * 1024  # a page shows this much of each body


def render(rec: Request, record_bodies: str) -> Markup:
    events: list[dict[str, Any]] = rec.get("events") or []
    attempts: list[dict[str, Any]] = rec.get("attempt_log") or []
    routed = next((ev.get("attrs") or {} for ev in events if ev["state"] == "routed"), {})
    parts = [
        _summary(rec),
        _section("Timeline", Markup(_timeline(rec, events, attempts) + _states(rec, events))),
        _section("Attempts", _attempts(rec, attempts)),
        _section("Routing decision", _routing(routed)),
        _section("Continuations", _events_of(rec, events, "continuing")),
        _section("Re-asks", _events_of(rec, events, "reasking")),
        _section("Privacy findings", _privacy(routed, rec.get("events") or [])),
        _section("Intent", _intent(rec.get("attrs") or {})),
        _section("Bodies", _bodies(rec, record_bodies)),
    ]
    return join(parts)


def _section(title: str, body: str) -> Markup:
    slug = title.lower().replace(" ", "-")
    return Markup(f'<section id="{e(slug)}"><h2>{e(title)}</h2>{e(body)}</section>')


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v
    return orjson.dumps(v).decode()


def _attrs(attrs: dict[str, Any]) -> Markup:
    items = [
        Markup(f"<span class=attr><b>{e(k)}</b>={e(_value(v))}</span>")
        for k, v in attrs.items()
        if k != "candidates"
    ]
    return join(items)


def _summary(rec: Request) -> Markup:
    attrs = rec.get("attrs") or {}
    wire = rec.get("wire") or "-"
    if attrs.get("wire_out") not in (None, wire):
        wire += f" → {attrs['wire_out']}"
    facts = [
        ("outcome", outcome(rec["outcome"])),
        ("model", rec["model"] or "-"),
        ("operation", rec["operation"] + (" (stream)" if rec["stream"] else "")),
        ("wire", wire),
        ("http status", rec["http_status"] or "-"),
        ("started", when(rec["started"])),
        ("latency ms", ms(rec["latency_ms"])),
        ("ttft ms", ms(rec["ttft_ms"])),
        ("attempts", rec["attempts"]),
        ("deployments", ", ".join(rec["deployments"] or []) or "-"),
        ("tokens", f"{rec['prompt_tokens']} in + {rec['completion_tokens']} out"),
        ("cost", usd(rec["cost_usd"])),
        ("key", rec.get("key_id") or "-"),
        ("tenant", rec.get("tenant") or "-"),
    ]
    if rec.get("error"):
        facts.append(("error", rec["error"]))
    if rec.get("migration"):
        facts.append(("migration", _value(rec["migration"])))
    dl = join(Markup(f"<div><dt>{e(k)}</dt><dd>{e(v)}</dd></div>") for k, v in facts)
    return Markup(f'<p class=rid>{e(rec["id"])}</p><dl class="facts">{dl}</dl>')


def _end(rec: Request, events: list[dict[str, Any]], attempts: list[dict[str, Any]]) -> float:
    ends = [rec.get("ended") or 0.0] + [ev["at"] for ev in events]
    ends += [a.get("ended") or a["started"] for a in attempts]
    return max(ends)


def _timeline(rec: Request, events: list[dict[str, Any]], attempts: list[dict[str, Any]]) -> Markup:
    """States as ticks on one lane, each attempt as a bar on its own: where the time went."""
    t0 = rec["started"]
    span = max(_end(rec, events, attempts) - t0, 1e-6)
    scale = (_W - _LEFT - 20) / span

    def x(at: float) -> float:
        return round(_LEFT + (at - t0) * scale, 1)

    lanes = 1 + len(attempts)
    height = 30 + lanes * 28
    out = [
        f'<svg class="timeline" viewBox="0 0 {_W} {height}" role="img" '
        f'aria-label="timeline of {len(events)} states and {len(attempts)} attempts">',
        '<text x="4" y="28" class="lane">states</text>',
        f'<line x1="{_LEFT}" y1="24" x2="{_W - 20}" y2="24" class="axis"/>',
    ]
    for ev in events:
        terminal = ev is events[-1]
        out.append(
            f'<circle cx="{x(ev["at"])}" cy="24" r="{6 if terminal else 4}" '
            f'class="state s-{e(ev["state"])}"><title>{e(ev["state"])} '
            f"+{(ev['at'] - t0) * 1000:.1f} ms</title></circle>"
        )
    for i, a in enumerate(attempts):
        y = 40 + i * 28
        start, end = x(a["started"]), x(a.get("ended") or a["started"])
        kind = "ok" if a.get("ok") else "bad"
        label = f"#{a['number']} {a['deployment']}"
        out.append(f'<text x="4" y="{y + 14}" class="lane">{e(label)}</text>')
        out.append(
            f'<rect x="{start}" y="{y}" width="{max(end - start, 2)}" height="18" '
            f'class="bar {kind}"><title>{e(label)}: {e(a.get("error") or "ok")}</title></rect>'
        )
    out.append(
        f'<text x="{_W - 20}" y="{height - 2}" text-anchor="end" class="lane">'
        f"{span * 1000:.1f} ms</text></svg>"
    )
    return Markup("".join(out))


def _states(rec: Request, events: list[dict[str, Any]]) -> Markup:
    t0 = rec["started"]
    rows = [
        [
            f"+{(ev['at'] - t0) * 1000:.2f} ms",
            pill(ev["state"], "state"),
            _attrs(ev.get("attrs") or {}),
        ]
        for ev in events
    ]
    return table(["at", "state", "attributes"], rows, "states")


def _attempts(rec: Request, attempts: list[dict[str, Any]]) -> Markup:
    if not attempts:
        return Markup('<p class="empty">no attempt was made</p>')
    t0 = rec["started"]
    cards = []
    for a in attempts:
        took = ((a.get("ended") or a["started"]) - a["started"]) * 1000
        facts = [
            ("deployment", a["deployment"]),
            ("result", a.get("error") or "ok"),
            ("http status", a.get("status") or "-"),
            ("began at", f"+{(a['started'] - t0) * 1000:.1f} ms"),
            ("took", f"{took:.1f} ms"),
            ("ttft", "-" if a.get("ttft_s") is None else f"{a['ttft_s'] * 1000:.1f} ms"),
            ("tokens", f"{a.get('prompt_tokens', 0)} in + {a.get('completion_tokens', 0)} out"),
            ("cost", usd(a.get("cost_usd"))),
            ("finish", a.get("finish_reason") or "-"),
            ("re-ask", "yes" if a.get("reask") else "no"),
        ]
        shown = {"number", "deployment", "error", "status", "started", "ended", "ok"}
        shown |= {"ttft_s", "prompt_tokens", "completion_tokens", "cost_usd", "finish_reason"}
        facts += [(k, _value(v)) for k, v in a.items() if k not in shown | {"reask"}]
        dl = join(Markup(f"<div><dt>{e(k)}</dt><dd>{e(v)}</dd></div>") for k, v in facts)
        kind = "ok" if a.get("ok") else "bad"
        cards.append(
            Markup(f'<div class="card {kind}"><h3>attempt {e(a["number"])}</h3><dl>{dl}</dl></div>')
        )
    return Markup(f'<div class="cards">{join(cards)}</div>')


def _routing(routed: dict[str, Any]) -> Markup:
    if not routed:
        return Markup('<p class="empty">not routed (refused before routing)</p>')
    chosen = routed.get("chosen")
    rows = []
    for c in routed.get("candidates") or []:
        name = c.get("deployment")
        if name == chosen:
            why = pill("chosen", "ok")
        elif c.get("rejected"):
            why = Markup(f"{pill('left out', 'bad')} {e(c['rejected'])}")
        else:
            why = Markup(
                f"{pill('fallback', 'warn')} ranked lower by: {e(routed.get('rule', '-'))}"
            )
        rows.append(
            [
                name,
                ms(c.get("latency_ms")),
                usd(c.get("cost_usd")),
                "yes" if c.get("redacted") else "-",
                why,
            ]
        )
    head = _attrs({k: v for k, v in routed.items() if k not in ("sensitive",)})
    candidates = table(
        ["candidate", "predicted latency ms", "predicted cost", "redacted", "verdict"],
        rows,
        "candidates",
    )
    return Markup(f"<p>{head}</p>{candidates}")


def _events_of(rec: Request, events: list[dict[str, Any]], state: str) -> Markup:
    t0 = rec["started"]
    rows = [
        [f"+{(ev['at'] - t0) * 1000:.2f} ms", _attrs(ev.get("attrs") or {})]
        for ev in events
        if ev["state"] == state
    ]
    if not rows:
        return Markup('<p class="empty">none</p>')
    return table(["at", "what"], rows)


def _privacy(routed: dict[str, Any], events: list[dict[str, Any]]) -> Markup:
    found: dict[str, int] = dict(routed.get("sensitive") or {})
    if not found:
        return Markup('<p class="empty">no sensitive data found (or the scan is off)</p>')
    return table(["kind", "count"], sorted(found.items()), "findings")


def _intent(attrs: dict[str, Any]) -> Markup:
    intent = attrs.get("intent")
    if not intent:
        return Markup('<p class="empty">no intent signal</p>')
    return Markup(f"<p>{_attrs(intent)}</p>")


def _bodies(rec: Request, record_bodies: str) -> Markup:
    out = []
    for name, label in (("request_body", "request"), ("response_body", "response")):
        body = rec.get(name)
        if body is None:
            text = f"not recorded (store.record_bodies: {record_bodies})"
            out.append(Markup(f"<h3>{label}</h3><p class=empty>{e(text)}</p>"))
            continue
        pretty = orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
        more = ""
        if len(pretty) > MAX_BODY_CHARS:
            rest = len(pretty) - MAX_BODY_CHARS
            pretty = pretty[:MAX_BODY_CHARS]
            more = f'<p class="muted">… {rest:,} more characters (see turnout trace --json)</p>'
        out.append(Markup(f'<h3>{label}</h3><pre class="body">{e(pretty)}</pre>{more}'))
    return join(out)


def not_found(request_id: str) -> Markup:
    back = link("/ui/requests", "back to requests")
    return Markup(f"<p>no request with id <code>{e(request_id)}</code> is recorded. {back}</p>")
