"""Scanner benchmark: detection per attack class and false positives, turnout vs a keyword regex.

A definition counts as flagged when it has a finding of at least `medium` severity (the default
`--fail-on` of `turnout mcp scan`). The baseline is the plain keyword regex below, the kind of
check many scanners started with. Corpora: bench/mcp/corpus/{poisoned,benign}.json.
Run: flock /tmp/turnout-bench.lock .venv/bin/python bench/mcp/bench_scanner.py
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from turnout.mcp.scanner.rules import SEVERITIES, scan_instructions, scan_tool
from turnout.mcp.scanner.text import tool_texts

HERE = Path(__file__).parent
RESULTS = HERE.parent / "results"

BASELINE = re.compile(
    r"ignore (all )?previous|important|system prompt|~/\.ssh|id_rsa|\.env\b|password|secret|"
    r"api[_ ]?key|token|credential|do not tell|don't tell|exfiltrat|<system>|<instructions>|"
    r"send .{0,40}https?://|bcc",
    re.I,
)
THRESHOLD = SEVERITIES.index("medium")


def baseline_flags(entry: dict[str, Any]) -> bool:
    texts = (
        [entry["instructions"]]
        if "instructions" in entry
        else [t for _, t in tool_texts(entry["tool"])]
    )
    return any(BASELINE.search(t) for t in texts)


def turnout_findings(entry: dict[str, Any], siblings: set[str]) -> list[Any]:
    if "instructions" in entry:
        return scan_instructions(entry["instructions"], entry["server"], siblings)
    return scan_tool(entry["tool"], entry["server"], siblings)


def flagged(findings: list[Any]) -> bool:
    return any(SEVERITIES.index(f.severity) >= THRESHOLD for f in findings)


def rate(hits: int, n: int, digits: int = 0) -> str:
    return f"{hits}/{n} ({hits / n:.{digits}%})"


def main() -> None:
    poisoned = json.loads((HERE / "corpus/poisoned.json").read_text())
    benign = json.loads((HERE / "corpus/benign.json").read_text())
    siblings: dict[str, set[str]] = defaultdict(set)
    for e in benign:
        if "tool" in e:
            siblings[e["server"]] |= {str(e["tool"].get("name")), str(e["tool"].get("title") or "")}
    rows: dict[str, dict[str, Any]] = {}
    missed: list[str] = []
    t0 = time.perf_counter()
    for e in poisoned:
        row = rows.setdefault(e["class"], {"n": 0, "turnout": 0, "baseline": 0})
        row["n"] += 1
        hit = flagged(turnout_findings(e, {e["tool"]["name"].lower()}))
        row["turnout"] += hit
        row["baseline"] += baseline_flags(e)
        if not hit:
            missed.append(e["id"])
    fp: dict[str, dict[str, Any]] = {}
    false_alarms: list[str] = []
    for e in benign:
        row = fp.setdefault(e["group"], {"n": 0, "turnout": 0, "baseline": 0, "servers": set()})
        row["n"] += 1
        row["servers"].add(e["server"])
        findings = turnout_findings(e, {s.lower() for s in siblings[e["server"]]})
        if flagged(findings):
            row["turnout"] += 1
            name = e["tool"]["name"] if "tool" in e else "(instructions)"
            false_alarms.append(
                f"{e['server']}/{name}: "
                + "; ".join(
                    f"{f.rule} {f.severity}: {f.message}"
                    for f in findings
                    if SEVERITIES.index(f.severity) >= THRESHOLD
                )
            )
        row["baseline"] += baseline_flags(e)
    elapsed = time.perf_counter() - t0
    total = {
        "n": sum(r["n"] for r in rows.values()),
        "turnout": sum(r["turnout"] for r in rows.values()),
        "baseline": sum(r["baseline"] for r in rows.values()),
    }
    servers = sum(len(r["servers"]) for r in fp.values())
    lines = [
        "# MCP scanner: detection and false positives",
        "",
        f"Flagged = at least one finding of severity ≥ medium. {len(poisoned)} poisoned "
        f"definitions in {len(rows)} classes, {len(benign)} benign definitions from {servers} "
        f"real servers. Scanning all took {elapsed * 1000:.0f} ms.",
        "",
        "| attack class | n | turnout detected | keyword-regex baseline detected |",
        "|---|---:|---:|---:|",
    ]
    for cls, r in [*rows.items(), ("**all poisoned**", total)]:
        turnout, baseline = rate(r["turnout"], r["n"]), rate(r["baseline"], r["n"])
        lines.append(f"| {cls} | {r['n']} | {turnout} | {baseline} |")
    lines += [
        "",
        "| benign group | definitions | servers | turnout false positives "
        "| baseline false positives |",
        "|---|---:|---|---:|---:|",
    ]
    for group, r in fp.items():
        names = ", ".join(sorted(r["servers"]))
        lines.append(
            f"| {group} | {r['n']} | {names} | {rate(r['turnout'], r['n'], 1)} "
            f"| {rate(r['baseline'], r['n'], 1)} |"
        )
    lines += ["", "Poisoned definitions turnout missed: " + (", ".join(missed) or "none"), ""]
    lines += ["turnout false positives:", *[f"- {f}" for f in false_alarms or ["none"]], ""]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mcp_scanner.md").write_text(text)
    out = {
        "classes": rows,
        "total": total,
        "benign": {g: {**r, "servers": sorted(r["servers"])} for g, r in fp.items()},
        "missed": missed,
        "false_positives": false_alarms,
        "elapsed_s": elapsed,
    }
    (RESULTS / "mcp_scanner.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
