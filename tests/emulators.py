"""Real `turnout emulate` processes on loopback, for the balancing tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx

from turnout.routing.signals import vllm_signal


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Emulator:
    def __init__(self, *args: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "turnout.emulate", "--port", str(self.port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.http = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.http.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"emulator did not start: {err}")
            time.sleep(0.05)

    def metrics(self) -> httpx.Response:
        return self.http.get("/metrics")

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def served(self) -> int:
        """Requests it finished, by its own count (`vllm:request_success_total`)."""
        total = 0.0
        for line in self.metrics().text.splitlines():
            if line.startswith("vllm:request_success_total"):
                total += float(line.split()[-1])
        return round(total)

    def running(self) -> int:
        return vllm_signal(self.metrics().text, at=0.0).running or 0
