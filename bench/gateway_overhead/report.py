"""The .json files are the record and the .md files are rendered from them alone, so that
--render can redo the tables without measuring again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway_overhead.common import fmt, log
from gateway_overhead.verdicts import verdicts


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _head(title: str, result: dict[str, Any]) -> list[str]:
    """Title, the command that reproduces the run, and a warning if it did not finish."""
    md = [
        f"`{result['command']}`",
        "",
        title,
        "",
        "Reproduce with the command above (after `bash bench/setup.sh`, from the repository root).",
        "",
    ]
    if result.get("status") != "complete":
        md += [f"**INCOMPLETE RUN: {result.get('status')}**", ""]
    return md


def write_overhead(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    e, s = result["env"], result["settings"]
    md = _head("# Gateway overhead: turnout vs Portkey gateway vs LiteLLM proxy", result)
    md += [
        f"Run {e['date']} on {e['cpus']} cores ({e['cpu_model']}), {e['mem_gib']} GiB, "
        f"kernel {e['kernel']}, load average at start {' '.join(e['loadavg_at_start'])}. "
        f"turnout {e['turnout']} (git {e['turnout_git']}, imported from "
        f"{e.get('turnout_src', '?')}); Portkey gateway {e.get('portkey', '-')} on Node "
        f"{e.get('node', '-')}; LiteLLM {e['litellm']}; {e['wrk']}; Python {e['python_bench']}.",
        "",
        "All processes (upstream, gateways, wrk, this driver) share the same "
        f"{e['cpus']} cores, pinned nowhere. Latencies are wrk's: request written → "
        "response read in full (for streams: the whole SSE stream through `[DONE]`).",
        "",
    ]
    noise = [
        r["other_procs_cpu_pct"]
        for r in [
            *result.get("closed_loop", []),
            *(st for sr in result.get("rate_search", []) for st in sr["steps"]),
        ]
        if r.get("other_procs_cpu_pct") is not None
    ]
    if noise and sorted(noise)[len(noise) // 2] > s.get("quiet_pct", 10.0):
        med, top = sorted(noise)[len(noise) // 2], max(noise)
        md += [
            f"> **Shared, busy machine.** Processes outside this benchmark used a median "
            f"{med:.0f}% (max {top:.0f}%) of all cores during the measured windows. "
            "Latencies (tails most) and throughputs are therefore pessimistic for every "
            "target alike; CPU time per request is the figure least affected. Re-run on "
            "a quiet machine for absolute numbers.",
            "",
        ]
    v = verdicts(result)
    if v:
        md += [
            "## Targets",
            "",
            md_table(["target", "goal", "measured", "verdict"], v),
            "",
        ]
        if s.get("soak_seconds"):
            md += ["Memory over the soak (flat RSS): see [soak.md](soak.md).", ""]
    probes = result.get("probes", {})
    if probes:
        md += ["## Correctness probe (one request each, before measuring)", ""]
        prow = []
        for name, p in probes.items():
            for mode, r in p.items():
                detail = r.get("error") or (
                    f"{r.get('events', '')} events, [DONE] {r.get('done')}"
                    if mode == "stream"
                    else ""
                )
                usage = "yes" if r.get("usage") else "no"
                prow.append(
                    [
                        name,
                        mode,
                        str(r.get("status", "–")),
                        "ok" if r.get("ok") else "FAILED",
                        usage,
                        detail,
                    ]
                )
        md += [md_table(["target", "mode", "status", "content", "usage", "detail"], prow), ""]
    rows = result.get("closed_loop", [])
    if rows:
        md += [
            f"## Closed loop: {s['duration']} s per cell after {s['warmup']} s warm-up",
            "",
            "Each of `c` connections sends its next request as soon as its previous "
            "response is read. Added = gateway − direct at the same percentile, mode and "
            "concurrency. CPU ms/req = utime+stime of the process over the measured "
            "window ÷ requests. Errors = socket errors + timeouts + non-200 + malformed "
            "bodies. Other CPU = CPU used meanwhile by processes outside the benchmark "
            "(other work on this shared machine), % of all cores.",
            "",
        ]
        header = [
            "mode",
            "c",
            "target",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "added p50",
            "added p99",
            "gw CPU ms/req",
            "upstream CPU ms/req",
            "errors",
            "other CPU %",
        ]
        trs = []
        for r in rows:
            lat, add = r["latency_ms"], r.get("added_ms")
            trs.append(
                [
                    r["mode"],
                    str(r["connections"]),
                    r["target"],
                    f"{r['rps']:.0f}",
                    fmt(lat["p50"]),
                    fmt(lat["p90"]),
                    fmt(lat["p99"]),
                    fmt(add["p50"]) if add else "–",
                    fmt(add["p99"]) if add else "–",
                    fmt(r["gateway_cpu_ms_per_req"], 3),
                    fmt(r["upstream_cpu_ms_per_req"], 3),
                    str(r["error_total"]),
                    fmt(r["other_procs_cpu_pct"], 1),
                ]
            )
        md += [md_table(header, trs), ""]
    searches = result.get("rate_search", [])
    if searches:
        md += [
            f"## Open loop: highest rate with p99 added < {s['slo_ms']:g} ms",
            "",
            "Requests are due on a fixed schedule (wrk's `delay()` hook, "
            "bench/wrk/chat.lua) over enough idle connections that a due request never "
            "waits for one; a send that found every connection busy is counted as late and "
            "fails the step, so queueing is not hidden (no coordinated omission). "
            f"A step passes with 0 errors, ≤ 0.1% late sends, ≥ 97% of the offered "
            f"requests completed, and p99 − direct p99 (direct measured at the same rate) "
            f"< {s['slo_ms']:g} ms. Rates go up ×{s['rate_factor']:g} from "
            f"{s['rate_start']:g}/s (down ÷2 to {s['rate_floor']:g}/s if that fails); a "
            f"failing step is retried once if it was borderline (< 1.5 × the bound) or "
            f"other processes used > 10% CPU meanwhile; then {s['rate_refine']} bisection steps. "
            f"Each step runs max({s['rate_step_seconds']} s, 300 requests, ≤ 20 s).",
            "",
        ]
        srows = []
        for sr in searches:
            at = sr.get("at_max")
            srows.append(
                [
                    sr["mode"],
                    sr["target"],
                    f"{sr['max_rate']:g}"
                    if sr["max_rate"]
                    else f"none (tried down to {min(st['rate'] for st in sr['steps']):g})",
                    f"{sr['first_failing_rate']:g}" if sr["first_failing_rate"] else "–",
                    fmt(at["latency_ms"]["p50"]) if at else "–",
                    fmt(at["latency_ms"]["p99"]) if at else "–",
                    fmt(at["direct_latency_ms"]["p99"]) if at else "–",
                    fmt(at["added_ms"]["p99"]) if at else "–",
                    fmt(at["gateway_cpu_ms_per_req"], 3) if at else "–",
                    str(len(sr["steps"])),
                ]
            )
        md += [
            md_table(
                [
                    "mode",
                    "target",
                    "max rate req/s",
                    "first failing",
                    "p50 ms",
                    "p99 ms",
                    "direct p99 ms",
                    "added p99",
                    "gw CPU ms/req",
                    "steps",
                ],
                srows,
            ),
            "",
        ]
        md += ["<details><summary>Every open-loop step</summary>", ""]
        steps = []
        for sr in searches:
            for st in sr["steps"]:
                steps.append(
                    [
                        st["mode"],
                        st["target"],
                        f"{st['rate']:g}",
                        str(st["connections"]),
                        f"{st['rps']:.0f}",
                        fmt(st["latency_ms"]["p50"]),
                        fmt(st["latency_ms"]["p99"]),
                        fmt(st["direct_latency_ms"]["p99"]),
                        fmt(st["added_ms"]["p99"]),
                        str(st["error_total"]),
                        "pass" if st["pass"] else "; ".join(st["fail_reasons"]),
                    ]
                )
        md += [
            md_table(
                [
                    "mode",
                    "target",
                    "rate",
                    "conns",
                    "req/s",
                    "p50",
                    "p99",
                    "direct p99",
                    "added p99",
                    "errors",
                    "result",
                ],
                steps,
            ),
            "",
            "</details>",
            "",
        ]
    sink = result.get("otlp_sink")
    if sink:
        md += [
            "## Spans",
            "",
            f"The OTLP sink received {sink.get('exports', '?')} span exports "
            f"({sink.get('bytes', 0) / 2**20:.1f} MiB of OTLP protobuf) from turnout during "
            "the run." + (f" ({sink['error']})" if "error" in sink else ""),
            "",
        ]
    md += ["## Setup and fairness", ""]
    md += [f"- {line}" for line in result.get("notes", [])]
    md.append("")
    (out / "overhead.md").write_text("\n".join(md))
    log(f"wrote {out / 'overhead.md'} and overhead.json")


def write_soak(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    e, s = result["env"], result["settings"]
    md = _head("# Memory soak: turnout vs LiteLLM proxy", result)
    md += [
        f"Run {e['date']} on {e['cpus']} cores ({e['cpu_model']}); turnout {e['turnout']} "
        f"(git {e['turnout_git']}); LiteLLM {e['litellm']}.",
        "",
        f"The gateways are soaked side by side: each gets {s['soak_seconds']} s of "
        "open-loop load from its own wrk (half streaming, half not) after a 10 s warm-up, "
        "while the RSS of its process (and any "
        f"children) is read from /proc every {s['soak_interval']:g} s. Slope = least "
        "squares over the samples. *Flat* means: second-half slope ≤ "
        f"{s['soak_flat_mib_per_min']:g} MiB/min and the final RSS ≤ 1.05 × the highest "
        "RSS of the first half.",
        "",
    ]
    rows = []
    for r in result.get("soak", []):
        m = r["rss_mib"]
        rows.append(
            [
                r["target"],
                f"{r['rate']:g}",
                str(r["requests"]),
                str(r["error_total"]),
                "{}/{}".format(
                    (r.get("open_loop") or {}).get("late", "–"),
                    (r.get("open_loop") or {}).get("slots", "–"),
                ),
                fmt(r["latency_ms"]["p50"]),
                fmt(r["latency_ms"]["p99"]),
                fmt(r["cpu_ms_per_req"], 3),
                fmt(m["start"], 1),
                fmt(m["end"], 1),
                fmt(m["max"], 1),
                fmt(m["slope_mib_per_min"], 3),
                fmt(m["slope_second_half_mib_per_min"], 3),
                "yes" if r["flat"] else "NO",
            ]
        )
    md += [
        md_table(
            [
                "target",
                "rate req/s",
                "requests",
                "errors",
                "late sends",
                "p50 ms",
                "p99 ms",
                "CPU ms/req",
                "RSS start MiB",
                "RSS end MiB",
                "RSS max MiB",
                "slope MiB/min",
                "2nd-half slope",
                "flat",
            ],
            rows,
        ),
        "",
    ]
    md += [f"- {line}" for line in result.get("notes", [])]
    md.append("")
    (out / "soak.md").write_text("\n".join(md))
    log(f"wrote {out / 'soak.md'} and soak.json")
