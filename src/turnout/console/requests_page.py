"""`/ui/requests`: the record, newest first, filtered, one keyset page at a time."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from turnout.console.html import (
    Markup,
    e,
    join,
    link,
    ms,
    outcome,
    query,
    table,
    trace_href,
    usd,
    when,
)
from turnout.errors import ApiError
from turnout.intent.signals import Signal
from turnout.lifecycle.states import TERMINAL
from turnout.store.page import RequestFilter
from turnout.store.read import Cursor, Request

PAGE_SIZE = 50
WIRES = ("chat.completions", "completions", "responses", "messages", "mcp")
LAST = {"5m": 300, "1h": 3600, "24h": 86400, "7d": 7 * 86400}
_TEXT_FILTERS = ("outcome", "model", "deployment", "key_id", "tenant", "wire", "intent")
_MAX_TEXT = 200


@dataclass(frozen=True, slots=True)
class Browse:
    """What one request of the page asked for: the filters, the window, where to start."""

    where: RequestFilter
    params: dict[str, str]  # as given, to keep in the form and the next page's link
    before: Cursor | None


def bad(message: str) -> ApiError:
    return ApiError(400, message, code="invalid_value")


def parse(params: Mapping[str, str], now: float | None = None) -> Browse:
    """The page's query string; ApiError 400 naming the parameter that is wrong."""
    now = time.time() if now is None else now
    kept: dict[str, str] = {}
    text: dict[str, str | None] = {}
    for name in _TEXT_FILTERS:
        value = params.get(name, "").strip()
        if len(value) > _MAX_TEXT:
            raise bad(f"{name} is longer than {_MAX_TEXT} characters")
        text[name] = value or None
        if value:
            kept[name] = value
    since = _instant(params, "since")
    until = _instant(params, "until")
    last = params.get("last", "")
    if last:
        if last not in LAST:
            raise bad(f"last must be one of {', '.join(LAST)}; got {last[:20]!r}")
        kept["last"] = last
        since = max(since or 0.0, now - LAST[last])
    for name in ("since", "until"):
        if params.get(name):
            kept[name] = params[name]
    where = RequestFilter(**text, since=since, until=until)  # type: ignore[arg-type]
    return Browse(where, kept, _cursor(params.get("before", "")))


def _instant(params: Mapping[str, str], name: str) -> float | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.removesuffix("Z"))
    except ValueError:
        raise bad(
            f"{name} must be a time like 2026-01-31T12:00 (UTC); got {value[:40]!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _cursor(value: str) -> Cursor | None:
    if not value:
        return None
    started, sep, rid = value.partition("~")
    try:
        return float(started), rid if sep else ""
    except ValueError:
        raise bad(f"before is not a page cursor: {value[:40]!r}") from None


def cursor_text(row: Request) -> str:
    return f"{row['started']!r}~{row['id']}"


def render(
    browse: Browse,
    rows: list[Request],
    models: Sequence[str],
    deployments: Sequence[str],
) -> Markup:
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    form = _form(browse.params, models, deployments)
    body = table(
        [
            "started",
            "id",
            "model",
            "wire",
            "outcome",
            "http",
            "attempts",
            "deployments",
            "tokens",
            "cost",
            "latency ms",
            "ttft ms",
            "key",
            "intent",
        ],
        [_row(r) for r in rows],
        "requests",
    )
    nav = []
    if browse.before is not None:
        nav.append(link("/ui/requests" + query(browse.params), "← newest"))
    if more:
        older = {**browse.params, "before": cursor_text(rows[-1])}
        nav.append(link("/ui/requests" + query(older), "older →"))
    pager = Markup('<p class="pager">' + join(nav) + "</p>")
    shown = f"{len(rows)} request{'s' if len(rows) != 1 else ''} shown"
    return Markup(f"{form}<p class=muted id=shown>{e(shown)}</p>{body}{pager}")


def _row(r: Request) -> list[object]:
    return [
        when(r["started"]),
        link(trace_href(r["id"]), r["id"]),
        r["model"] or "-",
        r.get("wire") or "-",
        outcome(r["outcome"]),
        r["http_status"] or "-",
        r["attempts"],
        ", ".join(r["deployments"] or []) or "-",
        f"{r['prompt_tokens']}+{r['completion_tokens']}",
        usd(r["cost_usd"]),
        ms(r["latency_ms"]),
        ms(r["ttft_ms"]),
        r.get("key_id") or "-",
        ", ".join(r.get("intent") or []) or "-",
    ]


def _select(name: str, label: str, options: Sequence[str], chosen: str | None) -> Markup:
    opts = [Markup('<option value="">any</option>')]
    for o in options:
        on = " selected" if o == chosen else ""
        opts.append(Markup(f'<option value="{e(o)}"{on}>{e(o)}</option>'))
    return Markup(f'<label>{e(label)}<select name="{e(name)}">{join(opts)}</select></label>')


def _input(name: str, label: str, value: str | None, hint: str = "") -> Markup:
    return Markup(
        f'<label>{e(label)}<input name="{e(name)}" value="{e(value or "")}"'
        f' placeholder="{e(hint)}"></label>'
    )


def _form(params: dict[str, str], models: Sequence[str], deployments: Sequence[str]) -> Markup:
    outcomes = sorted(s.value for s in TERMINAL)
    fields: list[Any] = [
        _select("outcome", "outcome", outcomes, params.get("outcome")),
        _select("model", "model", sorted(models), params.get("model")),
        _select("deployment", "deployment", sorted(deployments), params.get("deployment")),
        _input("key_id", "key", params.get("key_id"), "key id"),
        _input("tenant", "tenant", params.get("tenant")),
        _select("wire", "wire", WIRES, params.get("wire")),
        _select("intent", "intent signal", [s.value for s in Signal], params.get("intent")),
        _select("last", "last", list(LAST), params.get("last")),
        _input("since", "since (UTC)", params.get("since"), "2026-01-31T12:00"),
        _input("until", "until (UTC)", params.get("until"), "2026-01-31T13:00"),
    ]
    buttons = '<button type="submit">Filter</button> <a href="/ui/requests" class="reset">clear</a>'
    return Markup(
        f'<form method="get" action="/ui/requests" class="filters" id="filters">'
        f"{join(fields)}<span class=buttons>{buttons}</span></form>"
    )
