"""Reports people can read: what changed, how sure, since when; p-values over time as a plot."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Sequence
from typing import Any

from turnout.fingerprint.evidence import Evidence
from turnout.fingerprint.store import AlarmRecord, CheckRecord
from turnout.fingerprint.verdict import Verdict


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _evidence_row(e: Evidence) -> list[str]:
    if not e.applicable:
        status = "n/a"
    elif not e.votes:
        status = "info"
    else:
        status = "REJECT" if e.rejected else "ok"
    effect = f"{e.effect:+.3g} {e.effect_label}" if e.applicable else "-"
    return [e.name, status, _p(e.p_value), _p(e.p_adjusted), effect, e.detail]


def since_when(checks: Sequence[CheckRecord]) -> float | None:
    """When the current streak of rejections began (None if the last check passed)."""
    start = None
    for c in checks:
        start = (start or c.at) if c.changed else None
    return start


def verdict_text(
    verdict: Verdict, *, deployment: str = "", baseline: str = "", since: float | None = None
) -> str:
    head = f"{deployment}: " if deployment else ""
    lines = [head + verdict.summary()]
    if baseline:
        lines.append(
            f"baseline {baseline!r} (run {verdict.baseline_run}) vs run {verdict.fresh_run}"
        )
    if verdict.changed and since is not None:
        lines.append(f"rejecting since {_when(since)}")
    lines.append("")
    header = ["test", "verdict", "p", "p (Holm)", "effect", "detail"]
    lines.append(table([_evidence_row(e) for e in verdict.evidence], header))
    lines += [f"note: {n}" for n in verdict.notes]
    return "\n".join(lines)


def history_text(checks: Sequence[CheckRecord], alarms: Sequence[AlarmRecord] = ()) -> str:
    if not checks:
        return "no checks recorded"
    rows = [
        [
            _when(c.at),
            c.deployment,
            c.baseline,
            "CHANGED" if c.changed else "ok",
            _p(c.min_p),
            ",".join(c.verdict.get("reasons", [])) or "-",
        ]
        for c in checks
    ]
    out = table(rows, ["when", "deployment", "baseline", "verdict", "min p (Holm)", "why"])
    if alarms:
        out += "\n\nalarms\n" + "\n".join(
            f"  {_when(a.at)}  {a.kind:<8} {a.message}" for a in alarms
        )
    return out


def voting_series(checks: Sequence[CheckRecord]) -> dict[str, list[tuple[float, float]]]:
    """Per voting test, its (time, Holm-adjusted p) over the checks: what the verdict decided on.
    Tests that only inform (latency) or could not tell anything (n/a) are left out."""
    out: dict[str, list[tuple[float, float]]] = {}
    for c in checks:
        for e in c.verdict.get("evidence", []):
            if e.get("applicable") and e.get("votes", True) and e.get("p_adjusted") is not None:
                out.setdefault(e["name"], []).append((c.at, float(e["p_adjusted"])))
    return out


def time_span(times: Sequence[float]) -> tuple[float, float]:
    """The plot's time axis: the checks, with at least an hour either side, so one check (or a few
    close together) gets a readable axis rather than matplotlib's default span of years."""
    lo, hi = min(times), max(times)
    pad = max(3600.0, 0.05 * (hi - lo))
    return lo - pad, hi + pad


def plot_png(checks: Sequence[CheckRecord], alpha: float, title: str = "") -> bytes:
    """Each voting test's Holm-adjusted p-value per check over time (log scale) against α: a
    point under the line is a rejection, exactly as the verdict decides."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    def when(ts: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(ts)

    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
    floor = 1e-4
    for name, points in voting_series(checks).items():
        xs = [when(t) for t, _ in points]
        ax.plot(xs, [max(floor, p) for _, p in points], marker="o", ms=3, label=name)
    rejected = [(when(c.at), max(floor, c.min_p)) for c in checks if c.changed]
    if rejected:
        ax.scatter(
            [t for t, _ in rejected],
            [y for _, y in rejected],
            s=80,
            facecolors="none",
            edgecolors="red",
            label="check rejected",
            zorder=3,
        )
    ax.axhline(alpha, color="grey", ls="--", lw=1, label=f"α = {alpha:g}")
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, 1.5)
    ax.set_ylabel("p-value, Holm-adjusted")
    ax.set_title(title or "fingerprint checks: p-values over time")
    ax.legend(fontsize=7, loc="lower left", ncol=3)
    lo, hi = time_span([c.at for c in checks])
    ax.set_xlim(when(lo), when(hi))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def html_page(
    *,
    title: str,
    verdict: Verdict | None,
    checks: Sequence[CheckRecord],
    alarms: Sequence[AlarmRecord] = (),
    png: bytes | None = None,
    alpha: float = 0.05,
) -> str:
    """One self-contained page: the latest verdict, the plot (inline PNG), history, alarms."""
    esc = html.escape
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{esc(title)}</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:left}.bad{color:#b00;font-weight:bold}.ok{color:#070}</style>",
        f"<h1>{esc(title)}</h1>",
    ]
    if verdict is not None:
        cls = "bad" if verdict.changed else "ok"
        parts.append(f"<p class='{cls}'>{esc(verdict.summary())}</p>")
        since = since_when(checks)
        if verdict.changed and since is not None:
            parts.append(f"<p>Rejecting since {esc(_when(since))}.</p>")
        rows = "".join(
            "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in _evidence_row(e)) + "</tr>"
            for e in verdict.evidence
        )
        parts.append(
            "<table><tr><th>test</th><th>verdict</th><th>p</th><th>p (Holm)</th>"
            f"<th>effect</th><th>detail</th></tr>{rows}</table>"
        )
        parts += [f"<p>Note: {esc(n)}</p>" for n in verdict.notes]
    if png:
        data = base64.b64encode(png).decode()
        parts.append(
            "<h2>p-values over time</h2><p>Each voting test's Holm-adjusted p-value: a point "
            "under the α line is a rejection.</p><img alt='p-values over time' "
            f"src='data:image/png;base64,{data}'>"
        )
    if checks:
        rows = "".join(
            f"<tr><td>{esc(_when(c.at))}</td><td>{esc(c.deployment)}</td>"
            f"<td class='{'bad' if c.changed else 'ok'}'>{'CHANGED' if c.changed else 'ok'}</td>"
            f"<td>{esc(_p(c.min_p))}</td>"
            f"<td>{esc(', '.join(c.verdict.get('reasons', [])))}</td></tr>"
            for c in reversed(checks)
        )
        parts.append(
            "<h2>Checks</h2><table><tr><th>when</th><th>deployment</th><th>verdict</th>"
            f"<th>min p (Holm)</th><th>why</th></tr>{rows}</table>"
        )
    if alarms:
        rows = "".join(
            f"<tr><td>{esc(_when(a.at))}</td><td>{esc(a.kind)}</td><td>{esc(a.message)}</td></tr>"
            for a in reversed(alarms)
        )
        parts.append(
            f"<h2>Alarms</h2><table><tr><th>when</th><th>kind</th><th>message</th></tr>"
            f"{rows}</table>"
        )
    parts.append(
        f"<p><small>α = {alpha:g} per check; the verdict combines the tests with Holm's "
        "procedure, so a false alarm has probability at most α per check.</small></p>"
    )
    return "\n".join(parts)


def report_json(
    verdict: Verdict | None, checks: Sequence[CheckRecord], alarms: Sequence[AlarmRecord] = ()
) -> dict[str, Any]:
    return {
        "verdict": None if verdict is None else verdict.as_dict(),
        "since": since_when(checks),
        "checks": [
            {
                "id": c.id,
                "at": c.at,
                "deployment": c.deployment,
                "baseline": c.baseline,
                "run_id": c.run_id,
                "changed": c.changed,
                "min_p": c.min_p,
                "reasons": c.verdict.get("reasons", []),
            }
            for c in checks
        ],
        "alarms": [
            {
                "id": a.id,
                "at": a.at,
                "deployment": a.deployment,
                "kind": a.kind,
                "message": a.message,
                "detail": a.detail,
            }
            for a in alarms
        ],
    }
