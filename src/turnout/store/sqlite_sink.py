"""The record writer's SQLite sink: one connection, owned by the writer's thread."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from turnout.config.schema import Retention
from turnout.lifecycle.run import Run
from turnout.store.errors import StoreError
from turnout.store.retention import Pruned, prune
from turnout.store.rows import bare_row
from turnout.store.sqlite import (
    ERASE_BODIES,
    INSERT,
    Recovery,
    check_writable,
    open_for_writing,
)

log = logging.getLogger("turnout.store")

# What one row can make the database refuse; anything else is the store's own failure.
ROW_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    OverflowError,
    ValueError,
    TypeError,
)


class SQLiteSink:
    failures = (sqlite3.Error, OSError)
    buffers = False
    batch_rows = 1  # every slice in its own short transaction, as the writer was tuned

    def __init__(self, path: Path) -> None:
        self.path = self.location = path
        self.conn: sqlite3.Connection | None = None
        self.salvaged = 0

    def check(self) -> None:
        check_writable(self.path)

    def open(self) -> Recovery:
        wal = self.path.with_name(self.path.name + "-wal")
        wal_bytes = wal.stat().st_size if wal.exists() else 0
        self.conn = open_for_writing(self.path)
        check = self.conn.execute("PRAGMA quick_check").fetchone()[0]
        records = self.conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        return Recovery(wal_bytes > 0, wal_bytes, records, check == "ok", check)

    def write(self, runs: list[Run], rows: list[tuple[Any, ...]], record_bodies: str) -> int:
        conn = self._live()
        try:
            with conn:
                conn.execute("BEGIN")
                conn.executemany(INSERT, rows)
            return 0
        except ROW_ERRORS:
            pass  # one row the database refused: find it below, keep the others
        lost = 0
        with conn:
            conn.execute("BEGIN")
            for run, row in zip(runs, rows, strict=True):
                try:
                    conn.execute(INSERT, row)
                except ROW_ERRORS as exc:
                    try:
                        conn.execute(INSERT, bare_row(run, record_bodies, exc))
                        self.salvaged += 1
                    except ROW_ERRORS as again:
                        lost += 1
                        log.warning("store %s: record %r lost (%s)", self.path, run.id, again)
        return lost

    def probe(self) -> None:
        """A one-page write, so an idle gateway turns ready again once space is back."""
        conn = self._live()
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute(f"PRAGMA user_version={version}")

    def prune(self, retention: Retention, now: float) -> Pruned:
        return prune(self._live(), retention, now)

    def erase_bodies(self, request_id: str) -> bool:
        conn = self._live()
        try:
            with conn:
                return conn.execute(ERASE_BODIES, (request_id,)).rowcount > 0
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot erase {request_id!r}: {exc}") from None

    def close(self) -> None:
        if self.conn is None:
            return
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning(
                "store %s: the write-ahead log stays for the next start (%s)", self.path, exc
            )
        self.conn.close()
        self.conn = None

    def _live(self) -> sqlite3.Connection:
        if self.conn is None:
            raise sqlite3.ProgrammingError("the store is closed")
        return self.conn
