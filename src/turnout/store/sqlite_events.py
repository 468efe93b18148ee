"""Migration events in the record's SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from turnout.store.errors import StoreError
from turnout.store.events import MigrationEvent
from turnout.store.sqlite_errors import translated
from turnout.store.sqlite_schema import connect
from turnout.store.terms import FENCE

SCHEMA = """
CREATE TABLE IF NOT EXISTS migration_events (
    at REAL NOT NULL,
    model TEXT NOT NULL,
    mode TEXT NOT NULL,
    candidate TEXT NOT NULL,
    kind TEXT NOT NULL,
    stage INTEGER,
    percent REAL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS migration_events_model ON migration_events (model, mode, at);
"""
COLUMNS = "at, model, mode, candidate, kind, stage, percent, detail"
# Events of one instant keep the order they were written in.
NEWEST_FIRST = "ORDER BY at DESC, rowid DESC"


class SQLiteEventLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        conn = connect(path, "migration events")
        self._conn: sqlite3.Connection | None = conn

    def append(
        self, event: MigrationEvent, decision: str | None = None, term: int | None = None
    ) -> bool:
        detail = orjson.dumps(event.detail, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        args: tuple[Any, ...] = (
            *(event.at, event.model, event.mode, event.candidate, event.kind, event.stage),
            *(event.percent, detail, decision),
        )
        values = "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        if term is not None:
            values = "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE " + FENCE.format(mark="?")
            args += (term,)
        with translated(self.path):
            cursor = self._live().execute(
                f"INSERT INTO migration_events ({COLUMNS}, decision) {values} "
                "ON CONFLICT DO NOTHING",
                args,
            )
        return cursor.rowcount == 1

    def latest(self, model: str, mode: str, candidate: str) -> MigrationEvent | None:
        with translated(self.path):
            row = (
                self._live()
                .execute(
                    f"SELECT {COLUMNS} FROM migration_events "
                    f"WHERE model = ? AND mode = ? AND candidate = ? {NEWEST_FIRST} LIMIT 1",
                    (model, mode, candidate),
                )
                .fetchone()
            )
        return None if row is None else event_of(row)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"record store {self.path}: the migration event log is closed")
        return self._conn


def event_of(row: tuple[Any, ...]) -> MigrationEvent:
    at, model, mode, candidate, kind, stage, percent, detail = row
    return MigrationEvent(
        at, model, mode, candidate, kind, stage, percent, orjson.loads(detail) if detail else {}
    )
