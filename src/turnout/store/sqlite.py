"""The request record in SQLite (WAL): a batch writer off the request path, and readers."""

from __future__ import annotations

import collections
import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from turnout.lifecycle.run import Run
from turnout.store.bodies import shape_bodies

log = logging.getLogger("turnout.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    started REAL NOT NULL,
    ended REAL,
    model TEXT NOT NULL,
    operation TEXT NOT NULL,
    stream INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    deployments TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    ttft_ms REAL,
    latency_ms REAL,
    error TEXT,
    events TEXT NOT NULL,
    attempt_log TEXT NOT NULL,
    request_body TEXT,
    response_body TEXT,
    migration TEXT
);
CREATE INDEX IF NOT EXISTS requests_started ON requests (started);
CREATE INDEX IF NOT EXISTS requests_outcome ON requests (outcome, started);
CREATE INDEX IF NOT EXISTS requests_model ON requests (model, started);
"""
COLUMNS = (
    "id, started, ended, model, operation, stream, outcome, http_status, deployments, attempts, "
    "prompt_tokens, completion_tokens, cost_usd, ttft_ms, latency_ms, error, events, attempt_log, "
    "request_body, response_body, migration"
)
INSERT = f"INSERT OR REPLACE INTO requests ({COLUMNS}) VALUES ({', '.join('?' * 21)})"


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def row_of(run: Run, record_bodies: str) -> tuple[Any, ...]:
    request_body, response_body = shape_bodies(run.request_body, run.response_body, record_bodies)
    outcome = run.outcome.value if run.outcome else f"unfinished:{run.state.value}"
    return (
        run.id,
        run.started,
        run.ended,
        run.model,
        run.operation,
        int(run.stream),
        outcome,
        run.http_status,
        _json(run.deployments),
        len(run.attempts),
        run.prompt_tokens,
        run.completion_tokens,
        run.cost_usd,
        _ms(run.ttft_s),
        _ms(run.latency_s),
        run.error,
        _json([e.as_dict() for e in run.events]),
        _json([a.as_dict() for a in run.attempts]),
        _json(request_body),
        _json(response_body),
        _json(run.migration or None),
    )


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a killed process; only power loss may drop the last commits.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    if "migration" not in columns:  # a store written before model migration existed
        conn.execute("ALTER TABLE requests ADD COLUMN migration TEXT")
    return conn


@dataclass(slots=True)
class Recovery:
    unclean: bool
    wal_bytes: int
    records: int
    ok: bool
    detail: str

    def describe(self, path: Path) -> str:
        if not self.unclean:
            return f"store: {path} holds {self.records} records"
        state = "intact" if self.ok else f"DAMAGED ({self.detail})"
        return (
            f"store: {path} was not closed cleanly; replayed {self.wal_bytes} bytes of "
            f"write-ahead log, {self.records} records recovered, integrity {state}"
        )


class RecordWriter:
    """Takes finished runs on the event loop; a thread writes them in batches.

    The request path only appends to a deque. When the deque is full the record is dropped and
    counted (`dropped`), never waited for.
    """

    def __init__(self, url: str, record_bodies: str, flush_interval_s: float, queue_size: int):
        self.path = sqlite_path(url)
        self.record_bodies = record_bodies
        self.flush_interval_s = flush_interval_s
        self.queue_size = queue_size
        self.dropped = 0
        self.written = 0
        self.failed_batches = 0
        self._queue: collections.deque[Run] = collections.deque()
        self._wake = threading.Event()
        self._flushing = threading.Lock()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.recovery: Recovery | None = None

    def open(self) -> Recovery:
        wal = self.path.with_name(self.path.name + "-wal")
        wal_bytes = wal.stat().st_size if wal.exists() else 0
        self._conn = connect(self.path)
        check = self._conn.execute("PRAGMA quick_check").fetchone()[0]
        records = self._conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        self.recovery = Recovery(wal_bytes > 0, wal_bytes, records, check == "ok", check)
        self._thread = threading.Thread(target=self._loop, name="turnout-record", daemon=True)
        self._thread.start()
        return self.recovery

    def submit(self, run: Run) -> None:
        if len(self._queue) >= self.queue_size:
            self.dropped += 1
            return
        self._queue.append(run)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self._flush()
        self._flush()

    def _flush(self) -> None:
        # One batch at a time: a caller of flush() must not return while the writer thread
        # still holds records it took from the queue.
        with self._flushing:
            self._flush_locked()

    def _flush_locked(self) -> None:
        batch: list[Run] = []
        while self._queue:
            batch.append(self._queue.popleft())
        if not batch or self._conn is None:
            return
        try:
            rows = [row_of(run, self.record_bodies) for run in batch]
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.executemany(INSERT, rows)
            self.written += len(rows)
        except Exception:
            self.failed_batches += 1
            self.dropped += len(batch)
            log.exception("store: a batch of %d records could not be written", len(batch))

    def flush(self) -> None:
        """Write everything queued now (tests and shutdown)."""
        self._flush()

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._conn is not None:
            self._flush()
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None
