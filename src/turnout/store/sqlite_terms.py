"""The fleet's terms of leadership in the record's SQLite file."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from turnout.store.errors import StoreError
from turnout.store.sqlite_errors import translated
from turnout.store.sqlite_schema import connect
from turnout.store.terms import LEADER

REGISTER = (
    "INSERT INTO fleet_term (name, epoch, replica, at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch, replica = excluded.replica, "
    "at = excluded.at WHERE excluded.epoch > fleet_term.epoch"
)


class SQLiteTermLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        conn = connect(path, "terms")
        self._conn: sqlite3.Connection | None = conn

    def register(self, epoch: int, replica: str) -> int:
        if self._conn is None:
            raise StoreError(f"record store {self.path}: the term log is closed")
        with translated(self.path):
            self._conn.execute(REGISTER, (LEADER, epoch, replica, time.time()))
            row = self._conn.execute(
                "SELECT epoch FROM fleet_term WHERE name = ?", (LEADER,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
