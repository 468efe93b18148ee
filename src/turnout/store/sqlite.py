"""The request record in SQLite (WAL): its schema and how a writer opens it."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.store.errors import StoreError
from turnout.store.sqlite_schema import migrated

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
    migration TEXT,
    wire TEXT,
    key_id TEXT,
    tenant TEXT,
    attrs TEXT
);
CREATE INDEX IF NOT EXISTS requests_started ON requests (started);
CREATE INDEX IF NOT EXISTS requests_outcome ON requests (outcome, started);
CREATE INDEX IF NOT EXISTS requests_model ON requests (model, started);
"""
COLUMNS = (
    "id, started, ended, model, operation, stream, outcome, http_status, deployments, attempts, "
    "prompt_tokens, completion_tokens, cost_usd, ttft_ms, latency_ms, error, events, attempt_log, "
    "request_body, response_body, migration, wire, key_id, tenant, attrs"
)
INSERT = f"INSERT OR REPLACE INTO requests ({COLUMNS}) VALUES ({', '.join('?' * 25)})"
# A client's DELETE of a stored response: its content goes, the run's record stays, marked.
ERASE_BODIES = (
    "UPDATE requests SET request_body = NULL, response_body = NULL, attrs = json_set("
    "coalesce(attrs, '{}'), '$.responses.deleted', json('true')) WHERE id = ?"
)


def connect(path: Path, migrate: bool = True) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    # Only a new file takes this (before its first table): retention can then shrink it.
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    # After a checkpoint the WAL is cut back to this, instead of keeping its largest size.
    conn.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
    # NORMAL in WAL mode survives a killed process; only power loss may drop the last commits.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    if migrate:
        migrated(conn, str(path))
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


def check_writable(path: Path) -> None:
    """StoreError unless the store's file and its directory (the WAL's) can be written.

    Without opening the database: an open and close would replay and remove a WAL left by a
    killed gateway before the writer could report what it recovered.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab"):
            pass
        probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
        probe.touch()
        probe.unlink()
    except OSError as exc:
        # The OS says why (read-only file system, permission denied); SQLite only "unable to open".
        raise StoreError(
            f"record store {path}: cannot be opened for writing: {_why(exc)}"
        ) from None


def open_for_writing(path: Path, migrate: bool = True) -> sqlite3.Connection:
    """A writer's connection, or a StoreError saying which path failed and why."""
    check_writable(path)
    try:
        conn = connect(path, migrate)
    except sqlite3.Error as exc:
        raise StoreError(f"record store {path}: cannot be opened: {_why(exc)}") from None
    try:
        # Taking the write lock proves early what opening, which only reads, does not.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"record store {path}: cannot be written: {_why(exc)}") from None
    return conn


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f" ({exc.filename})" if exc.filename else "")
    return str(exc) or type(exc).__name__


def __getattr__(name: str) -> Any:
    # The writer lived here first; `from turnout.store.sqlite import RecordWriter` still works.
    if name == "RecordWriter":
        from turnout.store.writer import RecordWriter

        return RecordWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
