"""Client keys, their spend and events in the record's SQLite file."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from turnout.store.errors import RecordNotFound, StoreError
from turnout.store.keys import KeyEvent, KeyRecord, SpendDelta
from turnout.store.sqlite_errors import translated
from turnout.store.sqlite_schema import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS client_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    display TEXT NOT NULL,
    created REAL NOT NULL,
    models TEXT NOT NULL,
    rpm INTEGER,
    tpm INTEGER,
    budget_usd REAL,
    budget_period_s REAL,
    alert_at REAL,
    expires REAL,
    tenant TEXT,
    priority TEXT NOT NULL,
    metadata TEXT NOT NULL,
    revoked REAL,
    revision INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS client_keys_revision ON client_keys (revision);
CREATE TABLE IF NOT EXISTS client_key_spend (
    key_id TEXT NOT NULL,
    period_start REAL NOT NULL,
    usd REAL NOT NULL,
    tokens INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (key_id, period_start)
);
CREATE TABLE IF NOT EXISTS client_key_events (
    at REAL NOT NULL,
    key_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS client_key_events_key ON client_key_events (key_id, at);
"""
COLUMNS = (
    "id, name, secret_sha256, display, created, models, rpm, tpm, budget_usd, budget_period_s, "
    "alert_at, expires, tenant, priority, metadata, revoked, revision"
)
_NEXT_REVISION = "(SELECT COALESCE(MAX(revision), 0) + 1 FROM client_keys)"


class SQLiteKeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        conn = connect(path, "client keys", wal=True)
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()

    def add(self, key: KeyRecord) -> KeyRecord:
        row = _row_of(key)
        marks = ", ".join("?" * (len(row) - 1))
        with self._locked() as conn:
            conn.execute(
                f"INSERT INTO client_keys ({COLUMNS}) VALUES ({marks}, {_NEXT_REVISION})", row[:-1]
            )
        return self.get(key.id)

    def get(self, key_id: str) -> KeyRecord:
        with self._locked() as conn:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM client_keys WHERE id = ?", (key_id,)
            ).fetchone()
        if row is None:
            raise RecordNotFound(f"no client key with id {key_id!r}")
        return _key_of(row)

    def all(self) -> list[KeyRecord]:
        with self._locked() as conn:
            rows = conn.execute(f"SELECT {COLUMNS} FROM client_keys ORDER BY created").fetchall()
        return [_key_of(r) for r in rows]

    def changed_since(self, revision: int) -> list[KeyRecord]:
        with self._locked() as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM client_keys WHERE revision > ? ORDER BY revision",
                (revision,),
            ).fetchall()
        return [_key_of(r) for r in rows]

    def revoke(self, key_id: str, at: float) -> KeyRecord:
        self._update(key_id, f"revoked = COALESCE(revoked, ?), revision = {_NEXT_REVISION}", (at,))
        return self.get(key_id)

    def rotate(self, key_id: str, secret_sha256: str, display: str) -> KeyRecord:
        self._update(
            key_id,
            f"secret_sha256 = ?, display = ?, revision = {_NEXT_REVISION}",
            (secret_sha256, display),
        )
        return self.get(key_id)

    def add_spend(self, deltas: list[SpendDelta]) -> None:
        with self._locked() as conn:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO client_key_spend (key_id, period_start, usd, tokens, requests) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id, period_start) DO UPDATE SET "
                "usd = usd + excluded.usd, tokens = tokens + excluded.tokens, "
                "requests = requests + excluded.requests",
                [(d.key_id, d.period_start, d.usd, d.tokens, d.requests) for d in deltas],
            )
            conn.execute("COMMIT")

    def spend(self, key_id: str, period_start: float) -> SpendDelta:
        with self._locked() as conn:
            row = conn.execute(
                "SELECT usd, tokens, requests FROM client_key_spend "
                "WHERE key_id = ? AND period_start = ?",
                (key_id, period_start),
            ).fetchone()
        usd, tokens, requests = row if row is not None else (0.0, 0, 0)
        return SpendDelta(key_id, period_start, usd, tokens, requests)

    def append_events(self, events: list[KeyEvent]) -> None:
        with self._locked() as conn:
            conn.executemany(
                "INSERT INTO client_key_events (at, key_id, kind, detail) VALUES (?, ?, ?, ?)",
                [(e.at, e.key_id, e.kind, orjson.dumps(e.detail).decode()) for e in events],
            )

    def events(self, key_id: str, since: float = 0.0) -> list[KeyEvent]:
        with self._locked() as conn:
            rows = conn.execute(
                "SELECT at, key_id, kind, detail FROM client_key_events "
                "WHERE key_id = ? AND at >= ? ORDER BY at, rowid",
                (key_id, since),
            ).fetchall()
        return [KeyEvent(at, k, kind, orjson.loads(d) if d else {}) for at, k, kind, d in rows]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _update(self, key_id: str, assignments: str, args: tuple[Any, ...]) -> None:
        with self._locked() as conn:
            done = conn.execute(
                f"UPDATE client_keys SET {assignments} WHERE id = ?", (*args, key_id)
            )
        if done.rowcount == 0:
            raise RecordNotFound(f"no client key with id {key_id!r}")

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """The connection, held by one thread (the gateway writes spend from a worker)."""
        with self._lock, translated(self.path):
            conn = self._conn
            if conn is None:
                raise StoreError(f"record store {self.path}: the key store is closed")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise


def _row_of(key: KeyRecord) -> tuple[Any, ...]:
    return (
        key.id,
        key.name,
        key.secret_sha256,
        key.display,
        key.created,
        orjson.dumps(list(key.models)).decode(),
        key.rpm,
        key.tpm,
        key.budget_usd,
        key.budget_period_s,
        key.alert_at,
        key.expires,
        key.tenant,
        key.priority,
        orjson.dumps(key.metadata).decode(),
        key.revoked,
        key.revision,
    )


def _key_of(row: tuple[Any, ...]) -> KeyRecord:
    (id_, name, sha, display, created, models, rpm, tpm, budget, period, alert, expires,
     tenant, priority, metadata, revoked, revision) = row  # fmt: skip
    return KeyRecord(
        id=id_,
        name=name,
        secret_sha256=sha,
        display=display,
        created=created,
        models=tuple(orjson.loads(models)),
        rpm=rpm,
        tpm=tpm,
        budget_usd=budget,
        budget_period_s=period,
        alert_at=alert,
        expires=expires,
        tenant=tenant,
        priority=priority,
        metadata=orjson.loads(metadata),
        revoked=revoked,
        revision=revision,
    )
