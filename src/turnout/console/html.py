"""The page frame and the small pieces every page is made of. Values are escaped here, once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from html import escape
from urllib.parse import quote, urlencode

NAV = (
    ("/ui/", "Overview"),
    ("/ui/requests", "Requests"),
    ("/ui/deployments", "Deployments"),
    ("/ui/keys", "Keys and spend"),
    ("/ui/intent", "Intent"),
    ("/ui/migrations", "Migrations"),
    ("/ui/fingerprints", "Fingerprints"),
    ("/ui/mcp", "MCP guard"),
)


class Markup(str):
    """Text already safe to put in a page as it is."""


def e(value: object) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[str]) -> Markup:
    return Markup("".join(e(p) for p in parts))


def page(title: str, active: str, body: str, *, signed_in: bool = False) -> bytes:
    links = join(
        Markup(f'<a href="{href}"{" class=on" if href == active else ""}>{e(name)}</a>')
        for href, name in NAV
    )
    logout = (
        '<form method="post" action="/ui/logout" class="logout">'
        '<button type="submit">Sign out</button></form>'
        if signed_in
        else ""
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · turnout</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/static/console.css">'
        '<script src="/ui/static/console.js" defer></script></head><body>'
        f'<header><span class="brand">turnout</span><nav>{links}</nav>{logout}</header>'
        f"<main><h1>{e(title)}</h1>{body}</main></body></html>"
    ).encode()


def table(header: Sequence[str], rows: Iterable[Sequence[object]], cls: str = "") -> Markup:
    head = join(Markup(f"<th>{e(h)}</th>") for h in header)
    body = join(
        Markup("<tr>" + join(Markup(f"<td>{e(c)}</td>") for c in r) + "</tr>") for r in rows
    )
    if not body:
        return Markup('<p class="empty">nothing recorded</p>')
    return Markup(
        f'<table class="{e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def link(href: str, text: object) -> Markup:
    return Markup(f'<a href="{e(href)}">{e(text)}</a>')


def trace_href(request_id: str) -> str:
    return "/ui/requests/" + quote(request_id, safe="")


def query(params: dict[str, object]) -> str:
    kept = {k: str(v) for k, v in params.items() if v is not None and v != ""}
    return "?" + urlencode(kept) if kept else ""


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def pill(text: str, kind: str) -> Markup:
    return Markup(f'<span class="pill {e(kind)}">{e(text)}</span>')


def outcome(text: str) -> Markup:
    good = text in ("completed",)
    warn = text in ("truncated", "cancelled", "shed") or text.startswith("unfinished")
    return pill(text, "ok" if good else "warn" if warn else "bad")
