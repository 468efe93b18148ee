"""`turnout serve --workers N` as a real process group: start it, read its log, count its record."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")
START_S = 120.0  # a generous bound for a loaded machine; nothing is timed against it
CHAT = {"model": "assistant", "messages": [{"role": "user", "content": "x"}]}


def write_config(
    folder: Path, upstream_url: str, redis_url: str | None, flush_s: float = 0.05
) -> Path:
    state = f'state: {{url: "{redis_url}"}}\n' if redis_url else ""
    config = folder / "turnout.yaml"
    config.write_text(
        f"""
store: {{url: "sqlite:///{folder / "record.db"}", flush_interval_s: {flush_s}}}
{state}deployments:
  a: {{kind: openai, base_url: "{upstream_url}", model: m}}
models:
  assistant: {{deployments: [a]}}
"""
    )
    return config


class Group:
    """A supervisor and its workers, started with `turnout serve --workers N --port 0`."""

    def __init__(self, config: Path, workers: int, *extra: str) -> None:
        self.log = config.with_name("serve.log")
        self.db = config.with_name("record.db")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "turnout", "serve", "--config", str(config), "--port", "0",
             "--workers", str(workers), *extra],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        ready = self.wait_for(rf"ready: {workers} workers on 127\.0\.0\.1:(\d+)")
        self.port = int(ready.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, after: int = 0) -> re.Match[str]:
        """The first line after offset `after` of the log that matches."""

        def found() -> re.Match[str] | None:
            return re.compile(pattern).search(self.text(), after)

        return until(found, lambda: self.proc.poll() is not None, f"{pattern!r} in\n{self.text()}")

    def pids(self) -> dict[int, int]:
        """The pid each worker index has now, as the supervisor announced it."""
        out: dict[int, int] = {}
        for m in re.finditer(r"worker (\d+) ready(?: again)? \(pid (\d+)\)", self.text()):
            out[int(m.group(1))] = int(m.group(2))
        return out

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=START_S)

    def records(self) -> list[str]:
        with sqlite3.connect(self.db) as conn:
            return [r[0] for r in conn.execute("SELECT id FROM requests")]


def until(check: Callable[[], T | None], failed: Callable[[], bool], what: str) -> T:
    """Poll `check` until it gives a value; fails at once if `failed()` says it never will."""
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if failed():
            break
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def chat(url: str) -> httpx.Response:
    """One request on a connection of its own, so the kernel picks a worker for each."""
    with httpx.Client(base_url=url, timeout=30) as client:
        return client.post("/v1/chat/completions", json=CHAT)


def counter(metrics: str, name: str, labels: str) -> float:
    m = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", metrics, re.M)
    return float(m.group(1)) if m else 0.0
