"""A gateway recording into PostgreSQL, killed with SIGKILL mid-load, loses at most its last
flush interval: what it committed is there, and the next gateway records on."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
from gateway_process import chat_until, start_gateway, stop_gateway
from pg_server import PostgresServer
from upstream import ScriptedUpstream, Step, free_port

from turnout.store.query import list_requests

FLUSH_S = 0.1


def test_kill_9_mid_load_keeps_what_was_flushed(pg_server: PostgresServer, tmp_path: Path) -> None:
    url = pg_server.create_database()
    config = tmp_path / "turnout.yaml"
    log = tmp_path / "gateway.log"
    with ScriptedUpstream(default=Step(chunk_delay_s=0.0)) as up:
        config.write_text(
            f"""
store: {{url: "{url}", flush_interval_s: {FLUSH_S}}}
deployments:
  a: {{kind: openai, base_url: "{up.base_url}", model: m}}
models:
  assistant: {{deployments: [a]}}
"""
        )
        port = free_port()
        proc = start_gateway(config, port, log)
        answered: list[tuple[str, float]] = []
        stop = threading.Event()

        clients = [
            threading.Thread(target=chat_until, args=(port, stop, answered)) for _ in range(4)
        ]
        for c in clients:
            c.start()
        while len(answered) < 60:
            time.sleep(0.05)
        time.sleep(1.0)  # more load, so that much of it has been flushed before the kill
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait(timeout=10)
        stop.set()
        for c in clients:
            c.join(timeout=10)

        stored = {r["id"] for r in list_requests(url, limit=100_000)}
        # Everything answered well before the kill had a flush in between: it must be there.
        settled = [rid for rid, at in answered if at < killed_at - FLUSH_S - 0.3]
        missing = [rid for rid in settled if rid not in stored]
        assert settled and not missing, f"{len(missing)} of {len(settled)} settled records lost"

        # A new gateway on the same record goes on recording.
        proc = start_gateway(config, port, log)
        try:
            r = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={"model": "assistant", "messages": [{"role": "user", "content": "again"}]},
                timeout=10,
            )
            assert r.status_code == 200
            rid = r.headers["x-turnout-request-id"]
            deadline = time.monotonic() + 10
            while rid not in {x["id"] for x in list_requests(url, limit=5)}:
                assert time.monotonic() < deadline, "the next gateway's record never arrived"
                time.sleep(0.05)
        finally:
            stop_gateway(proc)
