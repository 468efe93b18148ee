"""A gateway killed with SIGKILL mid-load loses at most the last flush interval, never the file."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

from gateway_process import chat_until, start_gateway
from upstream import ScriptedUpstream, Step, free_port

FLUSH_S = 0.1


def test_kill_9_mid_load_keeps_flushed_records_and_the_file_intact(tmp_path: Path) -> None:
    db = tmp_path / "record.db"
    config = tmp_path / "turnout.yaml"
    log = tmp_path / "gateway.log"
    with ScriptedUpstream(default=Step(chunk_delay_s=0.0)) as up:
        config.write_text(
            f"""
store: {{url: "sqlite:///{db}", flush_interval_s: {FLUSH_S}}}
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

        workers = [
            threading.Thread(target=chat_until, args=(port, stop, answered)) for _ in range(4)
        ]
        for w in workers:
            w.start()
        time.sleep(1.5)
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait(timeout=10)
        stop.set()
        for w in workers:
            w.join(timeout=10)

        assert len(answered) > 50
        assert Path(f"{db}-wal").stat().st_size > 0  # the kill left a log to replay

        # The next start replays the log and says what it recovered, before anyone else opens it.
        proc = start_gateway(config, port, log)
        try:
            conn = sqlite3.connect(db)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = {row[0] for row in conn.execute("SELECT id FROM requests")}
            outcomes = {row[0] for row in conn.execute("SELECT DISTINCT outcome FROM requests")}
            conn.close()
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        text = log.read_text()
        assert "was not closed cleanly" in text
        assert f"{len(stored)} records recovered, integrity intact" in text
        # Everything answered well before the kill had a flush in between: it must be there.
        settled = [rid for rid, at in answered if at < killed_at - FLUSH_S - 0.3]
        missing = [rid for rid in settled if rid not in stored]
        assert settled and not missing, f"{len(missing)} of {len(settled)} settled records lost"
        assert outcomes == {"completed"}
