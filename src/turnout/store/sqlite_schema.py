"""The SQLite record's schema, as ordered migrations recorded in `schema_version`.

Version 1 is the record as the first versioned release writes it. A store from before
versioning is adopted as version 1: its tables stay as they are, and what they lack (columns
added over time, indexes) is added.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from turnout.store.errors import StoreError
from turnout.store.versions import Applied, too_new

VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)"
)
TABLES = (
    *("requests", "migration_events", "feedback", "client_keys", "client_key_spend"),
    *("client_key_events", "fingerprint_runs", "fingerprint_samples", "fingerprint_baselines"),
    *("fingerprint_checks", "fingerprint_alarms"),
)
# Columns added to tables before versioning began: an older store gets them when adopted.
_ADDED = {
    "requests": {"migration": "TEXT", "wire": "TEXT", "key_id": "TEXT", "tenant": "TEXT"}
    | {"attrs": "TEXT"},
    "fingerprint_samples": {"token_logprob": "REAL"},
    "fingerprint_runs": {"suite_spec": "TEXT"},
}


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _v1(conn: sqlite3.Connection) -> str:
    from turnout.store import (
        sqlite,
        sqlite_events,
        sqlite_feedback,
        sqlite_fingerprints,
        sqlite_keys,
    )

    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    scripts = (sqlite.SCHEMA, sqlite_events.SCHEMA, sqlite_feedback.SCHEMA)
    scripts += (sqlite_keys.SCHEMA, sqlite_fingerprints.SCHEMA)
    for script in scripts:
        for statement in statements(script):
            conn.execute(statement)
    for table, columns in _ADDED.items():
        present = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    conn.execute("CREATE INDEX IF NOT EXISTS requests_key ON requests (key_id, started)")
    # Intent attribution finds the answer a later turn is about by its conversation's hash.
    conn.execute(
        "CREATE INDEX IF NOT EXISTS requests_prefix "
        "ON requests (json_extract(attrs, '$.conversation_prefix'), started)"
    )
    return "adopted the unversioned store" if have & set(TABLES) else "created"


V2 = """
CREATE TABLE IF NOT EXISTS fleet_term (
    name TEXT PRIMARY KEY, epoch INTEGER NOT NULL, replica TEXT NOT NULL, at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS migration_events_decision ON migration_events (decision)
"""


def _v2(conn: sqlite3.Connection) -> str:
    """Decisions recorded once: the leader's term (`turnout.store.terms`), and an identity for
    each migration event a decision writes, so that writing it again changes nothing."""
    present = {r[1] for r in conn.execute("PRAGMA table_info(migration_events)")}
    if "decision" not in present:
        conn.execute("ALTER TABLE migration_events ADD COLUMN decision TEXT")
    for statement in statements(V2):
        conn.execute(statement)
    return ""


MIGRATIONS: tuple[tuple[int, str, Callable[[sqlite3.Connection], str]], ...] = (
    (1, "the record's tables", _v1),
    (2, "decisions fenced by the leader's term", _v2),
)
LATEST = MIGRATIONS[-1][0]


def version(conn: sqlite3.Connection) -> int:
    """The store's schema version; 0 before any (a new or an unversioned store)."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if found is None:
        return 0
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, where: str = "") -> list[Applied]:
    """Apply what the store lacks, in one transaction (another process waits, then finds it
    done). The connection must be in autocommit mode (isolation_level None)."""
    current = version(conn)
    if current > LATEST:
        raise too_new(where, current, LATEST)
    if current == LATEST:
        return []
    applied: list[Applied] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(VERSION_TABLE)
        current = version(conn)
        for number, name, step in MIGRATIONS:
            if number > current:
                note = step(conn)
                conn.execute(
                    "INSERT INTO schema_version (version, name, applied) VALUES (?, ?, ?)",
                    (number, name, time.time()),
                )
                applied.append(Applied(number, name, note))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return applied


def connect(path: Path, what: str, *, wal: bool = False) -> sqlite3.Connection:
    """A connection to the record at `path` for one kind of rows (`what`, for the error),
    shareable across threads, the schema brought up to date."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
        migrated(conn, str(path))
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"record store {path}: {what} cannot be kept: {exc}") from None
    return conn


def migrated(conn: sqlite3.Connection, where: str) -> None:
    """`migrate`, with sqlite3's errors as StoreError."""
    try:
        migrate(conn, where)
    except sqlite3.Error as exc:
        raise StoreError(
            f"record store {where}: its schema cannot be brought up to date: {exc}"
        ) from None
