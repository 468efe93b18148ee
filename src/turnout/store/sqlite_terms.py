"""The fleet's terms of leadership in the record's SQLite file."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from turnout.store.errors import StoreError
from turnout.store.sqlite_errors import translated
from turnout.store.sqlite_schema import migrated
from turnout.store.terms import LEADER

REGISTER = (
    "INSERT INTO fleet_term (name, epoch, replica, at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch, replica = excluded.replica, "
    "at = excluded.at WHERE excluded.epoch > fleet_term.epoch"
)


class SQLiteTermLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=5000")
            migrated(conn, str(path))
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"record store {path}: terms cannot be kept: {exc}") from None
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
