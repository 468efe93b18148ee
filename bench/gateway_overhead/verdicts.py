"""The goals turnout is held to, judged from the results, so that the report states whether
each was met."""

from __future__ import annotations

from typing import Any

from gateway_overhead.common import MODES


def by(rows: list[dict[str, Any]], **kv: Any) -> dict[str, Any] | None:
    for r in rows:
        if all(r.get(k) == v for k, v in kv.items()):
            return r
    return None


# The targets for one process on the 2-core machine.
ADDED_P50_C1_MS = 0.5
P99_C1_MS = 3.0
RPS_C32 = 1500.0
TIMES_PORTKEY = 3.0


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def verdicts(result: dict[str, Any]) -> list[list[str]]:
    rows = result.get("closed_loop", [])
    out: list[list[str]] = []
    for mode in MODES:
        r = by(rows, target="turnout", mode=mode, connections=1)
        if r and "added_ms" in r:
            p50 = r["added_ms"]["p50"]
            out.append(
                [
                    f"added p50, sequential (c=1), {mode}",
                    f"≤ {ADDED_P50_C1_MS:g} ms",
                    f"{p50:.2f} ms",
                    _met(p50 <= ADDED_P50_C1_MS),
                ]
            )
        if r and r["requests"]:
            p99, added = r["latency_ms"]["p99"], r.get("added_ms", {}).get("p99")
            extra = f" (added {added:.2f} ms)" if added is not None else ""
            out.append(
                [
                    f"p99, c=1, {mode}",
                    f"≤ {P99_C1_MS:g} ms",
                    f"{p99:.2f} ms{extra}",
                    _met(p99 <= P99_C1_MS),
                ]
            )
    for mode in MODES:
        tu = by(rows, target="turnout", mode=mode, connections=32)
        if tu is None:
            continue
        clean = tu["error_total"] == 0
        out.append(
            [
                f"throughput, c=32, {mode}",
                f"≥ {RPS_C32:,.0f} req/s",
                f"{tu['rps']:,.0f} req/s" + ("" if clean else f", {tu['error_total']} errors"),
                _met(clean and tu["rps"] >= RPS_C32),
            ]
        )
        pk = by(rows, target="portkey", mode=mode, connections=32)
        if pk and pk["rps"] > 0:
            ratio = tu["rps"] / pk["rps"]
            out.append(
                [
                    f"throughput vs Portkey, c=32, {mode}",
                    f"≥ {TIMES_PORTKEY:g}× Portkey",
                    f"{tu['rps']:,.0f} vs {pk['rps']:,.0f} req/s = {ratio:.2f}×",
                    _met(clean and ratio >= TIMES_PORTKEY),
                ]
            )
    for mode in MODES:
        peaks = {}
        for name in ("turnout", "litellm"):
            cands = [
                r["rps"]
                for r in rows
                if r["target"] == name and r["mode"] == mode and r["error_total"] == 0
            ]
            if cands:
                peaks[name] = max(cands)
        if len(peaks) == 2 and peaks["litellm"] > 0:
            ratio = peaks["turnout"] / peaks["litellm"]
            out.append(
                [
                    f"peak closed-loop throughput, {mode}",
                    "≥ 3× LiteLLM",
                    f"{peaks['turnout']:.0f} vs {peaks['litellm']:.0f} req/s = {ratio:.1f}×",
                    "met" if ratio >= 3 else "NOT met",
                ]
            )
    for mode in MODES:
        tu = by(rows, target="turnout", mode=mode, connections=32)
        ll = by(rows, target="litellm", mode=mode, connections=32)
        if tu and ll and tu["gateway_cpu_ms_per_req"] and ll["gateway_cpu_ms_per_req"]:
            a, b = tu["gateway_cpu_ms_per_req"], ll["gateway_cpu_ms_per_req"]
            out.append(
                [
                    f"CPU per request, c=32, {mode} (capacity per core = 1000 ÷ this)",
                    "≥ 3× less than LiteLLM",
                    f"{a:.3f} vs {b:.3f} ms = {b / a:.1f}× less",
                    "met" if b / a >= 3 else "NOT met",
                ]
            )
    rs = {(s["target"], s["mode"]): s for s in result.get("rate_search", [])}
    for mode in MODES:
        tu, ll = rs.get(("turnout", mode)), rs.get(("litellm", mode))
        if tu and ll:
            a, b = tu["max_rate"], ll["max_rate"]
            if a and b:
                ratio_s = f"{a:g} vs {b:g} req/s = {a / b:.1f}×"
                ok = a / b >= 3
            elif a and not b:
                lowest = min(st["rate"] for st in ll["steps"])
                ratio_s = f"{a:g} req/s vs none (LiteLLM failed down to {lowest:g} req/s)"
                ok = True
            else:
                ratio_s = f"{a or 'none'} vs {b or 'none'}"
                ok = False
            out.append(
                [
                    f"max rate with p99 added < SLO, {mode}",
                    "≥ 3× LiteLLM",
                    ratio_s,
                    "met" if ok else "NOT met",
                ]
            )
    return out
