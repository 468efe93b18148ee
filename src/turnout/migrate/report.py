"""The migration report: a table for the terminal, JSON for CI, an HTML page with plots."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from turnout.fingerprint.report import table
from turnout.migrate.analysis import Analysis
from turnout.migrate.diff import PairDiff
from turnout.migrate.features import tool_trajectory
from turnout.migrate.gate import Outcome, Verdict


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _estimate(v: Verdict) -> str:
    if v.margin_kind == "relative":
        return f"×{v.estimate:.3g} [{v.ci[0]:.3g}, {v.ci[1]:.3g}]"
    return f"{v.estimate:+.3f} [{v.ci[0]:+.3f}, {v.ci[1]:+.3f}]"


def _margin(v: Verdict) -> str:
    if v.margin_kind != "relative":
        return f"−{v.margin:.3g}"
    sign = {"higher_is_worse": "+", "lower_is_worse": "−"}.get(v.detail.get("direction", ""), "±")
    return f"{sign}{v.margin:.0%}"


def _label(v: Verdict) -> str:
    if v.detail.get("too_few"):
        return "TOO FEW"
    return v.outcome.value.upper()


def _need(v: Verdict, need: dict[str, int | None]) -> str:
    if v.outcome is Outcome.FAIL:
        return "-"
    if need["pass"] is None:
        return "not at these rates"
    return str(need["pass"])


def verdict_rows(a: Analysis) -> list[list[str]]:
    needs = a.gate.needs()["by_check"]
    return [
        [
            v.check,
            _label(v),
            _estimate(v),
            _margin(v),
            str(v.n),
            _p(v.p_fail),
            _p(v.detail.get("p_fail_holm", 1.0)),
            _p(v.p_pass),
            _need(v, needs[v.check]),
        ]
        for v in a.gate.verdicts
    ]


def notes(a: Analysis) -> list[str]:
    """What the reader must not miss: looks taken, checks left out and why."""
    out = []
    seq = a.replay.sequential
    if seq:
        looks = "; ".join(
            f"{k['pairs']} pairs at α={k['alpha']:.3g}: {k['outcome'].upper()}"
            for k in seq["looks"]
        )
        out.append(
            f"sequential: {len(seq['looks'])} look(s) of at most {seq['planned']} pairs, α spent "
            f"as {seq['spending']}: {looks}"
        )
    if "cost_usd" in a.skipped:
        out.append(
            "NOTE: neither arm has a price (deployments.NAME.price): the cost check is left out, "
            "and --budget-usd counted $0"
        )
    for name in ("latency_s", "chars"):
        if name in a.skipped:
            out.append(f"NOTE: {name} not compared: no pair where both arms answered")
    return out


VERDICT_HEADER = [
    "check",
    "verdict",
    "estimate [CI]",
    "margin",
    "n",
    "p fail",
    "p fail (Holm)",
    "p pass",
    "PASS needs (requests)",
]


def summary_text(a: Analysis) -> str:
    r = a.replay
    rates = a.rates()
    lines = [
        f"migration {r.old} → {r.candidate}: {len(a.diffs)} requests replayed, ${r.cost_usd:.6f}"
        + (f" ({r.note})" if r.note else ""),
        f"GATE {a.gate.summary()}",
        *notes(a),
        "",
        table(verdict_rows(a), VERDICT_HEADER),
        "",
        a.calibration.describe() + "; an answer closer to the prompt than to the recorded one is "
        "an echo, never a match",
        table(
            [[k, f"{rates['old'][k]:.2f}", f"{rates['candidate'][k]:.2f}"] for k in rates["old"]],
            ["rate", "old rerun", "candidate"],
        ),
    ]
    for key in ("route", "category"):
        rows = [
            [
                str(g[key]),
                str(g["pairs"]),
                str(g["regressed"]),
                f"{g['semantic_match'][0]:.2f} → {g['semantic_match'][1]:.2f}",
                f"{g['similarity'][0]:.2f} → {g['similarity'][1]:.2f}",
            ]
            for g in a.groups(key)
        ]
        lines += ["", table(rows, [key, "pairs", "regressed", "semantic match", "similarity"])]
    worst = a.worst(5)
    if worst:
        lines += ["", "worst regressions"]
        for d in worst:
            lines.append(f"  {d.pair.id} [{d.pair.category}] lost: {', '.join(d.lost)}")
            lines.append(f"    recorded : {_clip(d.pair.recorded.text)}")
            lines.append(f"    candidate: {_clip(_answer(d.pair.candidate))}")
    return "\n".join(lines)


def _clip(text: str, n: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def _answer(answer: Any) -> str:
    if answer.error:
        return f"[error: {answer.error}]"
    calls = "".join(f" [tool call {n}({a})]" for n, a in tool_trajectory(answer.tool_calls))
    return str(answer.text) + calls


def _pair_json(d: PairDiff) -> dict[str, Any]:
    return {
        "id": d.pair.id,
        "route": d.pair.route,
        "category": d.pair.category,
        "lost": d.lost,
        "recorded": _answer(d.pair.recorded),
        "old": _answer(d.pair.old),
        "candidate": _answer(d.pair.candidate),
        "similarity": {"old": d.old.similarity, "candidate": d.candidate.similarity},
    }


def report_json(a: Analysis, failures: list[str] | None = None) -> dict[str, Any]:
    return {
        "replay": a.replay.header(),
        "gate": a.gate.as_dict(),
        "settings": a.settings.as_dict(),
        "skipped_checks": a.skipped,
        "calibration": a.calibration.as_dict(),
        "rates": a.rates(),
        "metrics": a.metrics(),
        "by_route": a.groups("route"),
        "by_category": a.groups("category"),
        "worst": [_pair_json(d) for d in a.worst(20)],
        "pairs": [
            {"id": d.pair.id, "old": d.old.as_dict(), "candidate": d.candidate.as_dict()}
            for d in a.diffs
        ],
        "fail_on": failures or [],
    }


def plot_png(a: Analysis) -> bytes:
    """Similarity to the recorded answer (old rerun vs candidate), latency and cost per pair,
    and the share of requests that regressed per category."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), dpi=100)
    ax = axes[0][0]
    bins = np.linspace(min(0.0, min(d.candidate.similarity for d in a.diffs)), 1.0, 26)
    ax.hist([d.old.similarity for d in a.diffs], bins=bins, alpha=0.6, label="old vs old")
    ax.hist(
        [d.candidate.similarity for d in a.diffs], bins=bins, alpha=0.6, label="old vs candidate"
    )
    ax.axvline(a.calibration.threshold, color="k", ls="--", lw=1, label="match threshold")
    ax.set_title("similarity to the recorded answer")
    ax.legend(fontsize=8)

    answered = [d for d in a.diffs if d.old.latency_s and d.candidate.latency_s]
    ax = axes[0][1]
    if answered:
        ratios = [d.candidate.latency_s / d.old.latency_s for d in answered]  # type: ignore[operator]
        ax.hist(np.log2(ratios), bins=20, color="tab:purple")
        ax.axvline(0, color="k", lw=1)
    ax.set_title("latency: log2(candidate / old rerun) per request")

    ax = axes[1][0]
    deltas = [d.candidate.cost_usd - d.old.cost_usd for d in a.diffs]
    if any(deltas):
        ax.hist(deltas, bins=20, color="tab:green")
        ax.axvline(0, color="k", lw=1)
    else:
        ax.text(0.5, 0.5, "no cost on either side", ha="center", va="center")
        ax.axis("off")
    ax.set_title("cost: candidate − old rerun per request (USD)")

    ax = axes[1][1]
    groups = a.groups("category")
    ax.barh(
        [g["category"] for g in groups],
        [g["regressed"] / g["pairs"] for g in groups],
        color="tab:red",
    )
    ax.set_xlim(0, 1)
    ax.set_title("share of requests that regressed, by category")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def html_page(a: Analysis, png: bytes | None = None, failures: list[str] | None = None) -> str:
    esc = html.escape
    r = a.replay
    title = f"migration: {r.old} → {r.candidate}"
    cls = (
        "bad"
        if a.gate.outcome is Outcome.FAIL
        else "ok"
        if a.gate.outcome is Outcome.PASS
        else "meh"
    )
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{esc(title)}</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:80em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:left;vertical-align:top}.bad{color:#b00;font-weight:bold}.ok{color:#070}"
        ".meh{color:#a60}pre{white-space:pre-wrap;margin:0;font-size:12px;max-width:30em}</style>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{len(a.diffs)} recorded requests replayed against both models; "
        f"${r.cost_usd:.6f} spent{esc(' (' + r.note + ')') if r.note else ''}.</p>",
        f"<p class='{cls}'>Gate: {esc(a.gate.summary())}</p>",
    ]
    if failures:
        parts.append("<p class='bad'>--fail-on: " + esc("; ".join(failures)) + "</p>")
    parts += [f"<p>{esc(n)}</p>" for n in notes(a)]
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td class='{ {'FAIL': 'bad', 'PASS': 'ok'}.get(c, '') }'>{esc(c)}</td>" for c in row
        )
        + "</tr>"
        for row in verdict_rows(a)
    )
    head = "".join(f"<th>{esc(h)}</th>" for h in VERDICT_HEADER)
    parts.append(f"<h2>Checks</h2><table><tr>{head}</tr>{rows}</table>")
    parts.append(
        "<ul>"
        + "".join(f"<li>{esc(v.explanation)} — {esc(v.test)}</li>" for v in a.gate.verdicts)
        + "</ul>"
    )
    if a.skipped:
        parts.append(f"<p>Not compared (nothing to compare): {esc(', '.join(a.skipped))}.</p>")
    if png:
        data = base64.b64encode(png).decode()
        parts.append(f"<h2>Distributions</h2><img alt='plots' src='data:image/png;base64,{data}'>")
    rates = a.rates()
    rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{rates['old'][k]:.2f}</td><td>{rates['candidate'][k]:.2f}</td></tr>"
        for k in rates["old"]
    )
    parts.append(
        f"<h2>Rates</h2><p>Semantic match: similarity to the recorded answer at or above the "
        f"{esc(a.calibration.describe())}, and closer to the recorded answer than to the prompt "
        "(an echo of the request never matches).</p>"
        f"<table><tr><th>rate</th><th>old rerun</th><th>candidate</th></tr>{rows}</table>"
    )
    for key in ("route", "category"):
        rows = "".join(
            f"<tr><td>{esc(str(g[key]))}</td><td>{g['pairs']}</td><td>{g['regressed']}</td>"
            f"<td>{g['semantic_match'][0]:.2f} → {g['semantic_match'][1]:.2f}</td>"
            f"<td>{g['similarity'][0]:.2f} → {g['similarity'][1]:.2f}</td>"
            f"<td>{g['valid'][0]:.2f} → {g['valid'][1]:.2f}</td></tr>"
            for g in a.groups(key)
        )
        parts.append(
            f"<h2>By {key}</h2><table><tr><th>{key}</th><th>pairs</th><th>regressed</th>"
            f"<th>semantic match</th><th>similarity</th><th>valid</th></tr>{rows}</table>"
        )
    worst = a.worst(20)
    if worst:
        rows = "".join(
            f"<tr><td>{esc(d.pair.id)}<br>{esc(d.pair.category)}<br>"
            f"<span class='bad'>{esc(', '.join(d.lost))}</span></td>"
            f"<td><pre>{esc(_answer(d.pair.recorded))}</pre></td>"
            f"<td><pre>{esc(_answer(d.pair.old))}</pre></td>"
            f"<td><pre>{esc(_answer(d.pair.candidate))}</pre></td></tr>"
            for d in worst
        )
        parts.append(
            "<h2>Worst regressions</h2><table><tr><th>request</th><th>recorded</th>"
            f"<th>old rerun</th><th>candidate</th></tr>{rows}</table>"
        )
    s = a.settings
    parts.append(
        f"<p><small>Family-wise α = {s.alpha:g} (Holm over the checks); each check's tests are "
        f"one-sided at α, its interval at level {1 - 2 * s.alpha:g}. Pass-rate margin "
        f"{s.margin:g}; semantic distance +{s.distance_margin:.0%}, "
        f"latency +{s.latency_margin:.0%}, cost +{s.cost_margin:.0%}, "
        f"length ±{s.length_margin:.0%}."
        "</small></p>"
    )
    return "\n".join(parts)
