"""`turnout serve` as a real process: for what only processes show (kill -9, replicas)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def start_gateway(
    config: Path,
    port: int,
    log: Path,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """A gateway process on `port`, returned once /readyz answers (its output goes to `log`)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "turnout", "serve", "--config", str(config), "--port", str(port)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=None if env is None else {**os.environ, **env},
        preexec_fn=preexec_fn,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise AssertionError("gateway exited before it was ready:\n" + log.read_text())
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("gateway did not become ready:\n" + log.read_text())


def stop_gateway(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chat_until(port: int, stop: threading.Event, answered: list[tuple[str, float]]) -> None:
    """Send chat requests one after another until `stop` or the gateway goes away, noting each
    answered request's id and when its answer came (for `threading.Thread(target=...)`)."""
    body = {"model": "assistant", "messages": [{"role": "user", "content": "x"}]}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        while not stop.is_set():
            try:
                r = client.post("/v1/chat/completions", json=body)
            except httpx.HTTPError:
                return
            answered.append((r.headers["x-turnout-request-id"], time.monotonic()))
