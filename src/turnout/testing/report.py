"""The trials report: a table for people at the end of a pytest run, JSON for CI.

A report doubles as the baseline of a later run (`--turnout-baseline`): tests are matched by
node id, and their pass counts compared.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from turnout.testing.trials import TrialsResult, group_pass_k

REPORT_VERSION = 1


def load_baseline(path: str | Path) -> dict[str, tuple[int, int]]:
    """node id → (passes, n) from an earlier JSON report."""
    data = orjson.loads(Path(path).read_bytes())
    if data.get("turnout_trials_report") != REPORT_VERSION:
        raise ValueError(f"{path}: not a turnout trials report")
    return {t["name"]: (int(t["passes"]), int(t["n"])) for t in data.get("tests") or ()}


def _group_name(nodeid: str) -> str:
    return nodeid.split("[", 1)[0]


def groups(results: Sequence[TrialsResult]) -> list[dict[str, Any]]:
    """Parametrized cases of one test function are tasks of one group (τ-bench's view)."""
    by_group: dict[str, list[TrialsResult]] = defaultdict(list)
    for r in results:
        by_group[_group_name(r.name)].append(r)
    out = []
    for name, members in by_group.items():
        if len(members) < 2:
            continue
        ks = sorted({k for r in members for k in r.spec.pass_k})
        out.append(
            {
                "name": name,
                "tasks": len(members),
                "pass_k": {str(k): v for k, v in group_pass_k(members, ks).items()},
            }
        )
    return out


def as_json(results: Sequence[TrialsResult]) -> dict[str, Any]:
    return {
        "turnout_trials_report": REPORT_VERSION,
        "tests": [r.as_json() for r in results],
        "groups": groups(results),
    }


def write_json(results: Sequence[TrialsResult], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(orjson.dumps(as_json(results), option=orjson.OPT_INDENT_2) + b"\n")
    return p


def _rule(r: TrialsResult) -> str:
    if r.spec.sprt is not None:
        return f"SPRT {r.spec.sprt.p0}/{r.spec.sprt.p1}"
    return f"≥ {r.spec.threshold}"


def table(results: Sequence[TrialsResult]) -> list[str]:
    header = ["test", "passes", "rate", "interval", "rule", "verdict", "pass^k", "vs baseline"]
    rows = []
    for r in results:
        lo, hi = r.interval
        pk = " ".join(f"^{k}={v:.2f}" for k, v in r.pass_k().items())
        base = "-"
        if r.baseline is not None:
            b = r.baseline
            base = f"{b.difference:+.2f} [{b.interval[0]:+.2f},{b.interval[1]:+.2f}] {b.change}"
        conf = f"{round(r.spec.confidence * 100)}%"
        rows.append(
            [r.name, f"{r.passes}/{r.n}", f"{r.rate:.2f}", f"{conf} [{lo:.2f}, {hi:.2f}]",
             _rule(r), r.verdict.value, pk or "-", base]
        )  # fmt: skip
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    for g in groups(results):
        pk = " ".join(f"pass^{k}={v:.3f}" for k, v in g["pass_k"].items())
        lines.append(f"{g['name']} ({g['tasks']} tasks): {pk}")
    return lines
