"""Pages drawn from the running gateway and the key store: deployments, keys and spend."""

from __future__ import annotations

from typing import Any

from turnout.console.html import Markup, e, join, link, pill, table, usd


def deployments(rows: list[dict[str, Any]]) -> Markup:
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
    return Markup(f"{body}<p class=muted>{e(note)}</p>")


def keys(rows: list[dict[str, Any]], enabled: bool) -> Markup:
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
    return Markup(mode + body)
