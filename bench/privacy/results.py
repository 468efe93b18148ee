"""Writing a benchmark's results: a markdown table (with the command that reproduces it at the
top) and the same numbers as JSON, both under bench/results/."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "results"


def command_line() -> str:
    script = Path(sys.argv[0]).resolve().relative_to(RESULTS.parents[1])
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    return f"flock /tmp/turnout-bench.lock .venv/bin/python {script} {args}".rstrip()


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write(name: str, title: str, body: str, data: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.python_implementation()} {platform.python_version()}, "
    machine += f"{platform.machine()}, {os.cpu_count()} cores"
    md = f"# {title}\n\nReproduce (from the repo root):\n\n    {command_line()}\n\n"
    md += f"Machine: {machine}\n\n{body}\n"
    (RESULTS / f"{name}.md").write_text(md)
    payload = {"command": command_line(), "machine": machine, **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote bench/results/{name}.md and .json")
