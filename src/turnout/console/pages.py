"""Pages drawn from the running gateway and the key store: deployments, keys and spend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from turnout.console import spend
from turnout.console.html import Markup, e, join, link, pill, table, usd, when


@dataclass(frozen=True, slots=True)
class Usage:
    """What the record says the keys did in the window shown."""

    over: str
    since: float
    now: float
    bucket_s: float
    spent: dict[str, list[tuple[float, float]]]  # key_id: [(bucket start, cost)]
    refused: list[dict[str, Any]]  # RecordReader.key_refusals


def deployments(
    rows: list[dict[str, Any]],
    history: list[dict[str, Any]] | None = None,
    balanced: list[dict[str, Any]] | None = None,
) -> Markup:
    kinds = {"closed": "ok", "half-open": "warn", "open": "bad"}
    body = table(
        [
            "deployment",
            "kind",
            "model",
            "tags",
            "breaker",
            "failures",
            "in flight",
            "queued",
            "answers learned from",
            "rtt ms",
            "predicted ttft ms",
            "predicted latency ms",
            "ms / output token",
            "price in / out per Mtok",
        ],
        [
            [
                d["deployment"],
                d["kind"],
                d["model"],
                ", ".join(d["tags"]) or "-",
                pill(
                    d["breaker"] + (f" {d['open_for_s']} s" if d["breaker"] == "open" else ""),
                    kinds[d["breaker"]],
                ),
                d["failures"],
                f"{d['in_flight']}"
                + (f" / {d['max_concurrency']}" if d["max_concurrency"] else ""),
                d["queued"],
                d["observations"],
                d["rtt_ms"],
                d["predicted_ttft_ms"],
                d["predicted_ms"],
                d["per_token_ms"],
                f"${d['price_in_per_mtok']:g} / ${d['price_out_per_mtok']:g}",
            ]
            for d in rows
        ],
        "deployments",
    )
    note = (
        "Estimates are what this gateway process has learned from its own answers "
        "(and the record at start-up); predictions are for a typical answer length."
    )
    out = Markup(f"{body}<p class=muted>{e(note)}</p>")
    if history is not None:
        out += _history(history, kinds)
    if balanced is not None:
        out += _balanced(balanced)
    return Markup(out)


def _history(history: list[dict[str, Any]], kinds: dict[str, str]) -> Markup:
    rows = [
        [when(h["at"]), h["deployment"], pill(h["state"], kinds[h["state"]]), h["why"]]
        for h in history
    ]
    return Markup(
        "<h2>Breaker history</h2>"
        + table(["at", "deployment", "breaker", "why"], rows, "breaker-history")
        + "<p class=muted>Transitions this gateway process saw (the last 50 a deployment), "
        "newest first; each replica keeps its own.</p>"
    )


def _balanced(rows: list[dict[str, Any]]) -> Markup:
    if not rows:
        return Markup(
            "<h2>Balancer</h2><p class=muted>No model routes <code>balanced</code>: "
            "no instance is tracked.</p>"
        )

    def reported(r: dict[str, Any]) -> str:
        s = r["reported"]
        if s is None:
            return "no fresh report" if r["scrape_url"] else "not scraped"
        kv = "-" if s["kv_usage"] is None else f"{s['kv_usage']:.0%}"
        running, waiting = (("-" if v is None else v) for v in (s["running"], s["waiting"]))
        return f"{running} running, {waiting} waiting, KV {kv} ({s['age_s']} s ago)"

    body = table(
        [
            "instance",
            "health",
            "ours in flight",
            "other replicas'",
            "load counted",
            "batch",
            "context tokens",
            "prefill tok/s",
            "the server reports",
        ],
        [
            [
                r["instance"],
                pill("healthy" if r["healthy"] else "unhealthy", "ok" if r["healthy"] else "bad"),
                r["ours"],
                r["others"],
                r["load"],
                f"{r['batch']}" + (f" / {r['max_batch']}" if r["max_batch"] else ""),
                f"{r['context_tokens']}" + (f" / {r['kv_tokens']}" if r["kv_tokens"] else ""),
                r["prefill_tps"],
                reported(r),
            ]
            for r in rows
        ],
        "instances",
    )
    return Markup("<h2>Balancer</h2>" + body)


def keys(rows: list[dict[str, Any]], enabled: bool, usage: Usage | None = None) -> Markup:
    mode = "" if enabled else "<p class=muted>auth.mode is none: keys are not checked.</p>"
    body = table(
        [
            "key",
            "name",
            "tenant",
            "status",
            "models",
            "rate limits",
            "budget",
            "spent this period",
            "requests this period",
            "record",
        ],
        [
            [
                k["id"],
                k.get("name") or "-",
                k.get("tenant") or "-",
                pill(k["status"], "ok" if k["status"] == "active" else "bad"),
                ", ".join(k.get("models") or []) or "all",
                k["limits"],
                k["budget"],
                usd(k["spent"]),
                k["requests"],
                join(
                    [
                        link(f"/ui/requests?key_id={k['id']}", "requests"),
                        Markup(" · "),
                        link(f"/ui/requests?key_id={k['id']}&outcome=rejected", "refused"),
                    ]
                ),
            ]
            for k in rows
        ],
        "keys",
    )
    if usage is None:
        return Markup(mode + body)
    return Markup(mode + body + _usage(rows, usage))


def _usage(rows: list[dict[str, Any]], u: Usage) -> Markup:
    choices = join(
        Markup(" <b>" + e(w) + "</b>")
        if w == u.over
        else Markup(" " + link(f"/ui/keys?over={w}", w))
        for w in spend.WINDOWS
    )
    parts = [Markup(f"<h2>Spend against budget</h2><p class=muted>last{choices}</p>")]
    refused = spend.refusals(u.refused)
    for k in rows:
        points = spend.cumulative(u.spent.get(k["id"], []), k.get("budget_period_s"))
        reasons = refused.get(k["id"], [])
        drawn = spend.chart(points, k.get("budget_usd"), u.since, u.now, u.bucket_s)
        why = (
            table(["refused because", "requests"], reasons, "refusals")
            if reasons
            else Markup('<p class="muted">none refused in this window</p>')
        )
        parts.append(
            Markup(
                f'<section class="key-usage" id="usage-{e(k["id"])}">'
                f"<h3>{e(k.get('name') or k['id'])} <span class=muted>{e(k['id'])}</span></h3>"
                f'<div class="usage">{drawn}'
                f"{why}</div></section>"
            )
        )
    return join(parts)
