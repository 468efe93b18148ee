"""Real gateway replicas (`turnout serve` processes) sharing one record and one Redis."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from upstream import free_port

from turnout.migrate.events import read_events

DEADLINE_S = 120.0  # generous: conditions are awaited, never timed


@dataclass
class Replica:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(self.url + "/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name) or line[len(name) : len(name) + 1] not in ("{", " "):
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def leads(self) -> bool:
        return self.metric("turnout_fleet_leader") == 1

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def serve(config: Path, name: str, folder: Path) -> Replica:
    port = free_port()
    log = folder / f"{name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "turnout", "serve", "--config", str(config), "--port", str(port)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    replica = Replica(name, proc, port, log)
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(replica.url + "/readyz", timeout=1).status_code == 200:
                return replica
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"{name} did not become ready:\n" + log.read_text())


def wait_for(check: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def ask(replica: Replica, conversation: str | None = None) -> httpx.Response:
    conversation = conversation or uuid.uuid4().hex
    headers = {"x-turnout-conversation-id": conversation}
    return httpx.post(
        replica.url + "/v1/chat/completions",
        json={
            "model": "assistant",
            # A new question each time: one conversation, one turn, no intent signal.
            "messages": [{"role": "user", "content": f"What is {conversation}? Answer in JSON."}],
            "response_format": {"type": "json_object"},
        },
        headers=headers,
        timeout=30,
    )


def canary_events(url: str) -> list[tuple[str, int | None]]:
    return [(e.kind, e.stage) for e in read_events(url, limit=1000) if e.mode == "canary"]


def events(url: str, mode: str) -> list[Any]:
    return [e for e in read_events(url, limit=1000) if e.mode == mode]


def route_status(response: httpx.Response) -> str:
    found = re.search(r"status=(\w+)", response.headers.get("x-turnout-route", ""))
    return found.group(1) if found else ""
