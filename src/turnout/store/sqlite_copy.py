"""A SQLite record as one end of `turnout store copy`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from turnout.store.copy_tables import Table
from turnout.store.errors import NoRecordStore
from turnout.store.location import sqlite_file
from turnout.store.sqlite import open_for_writing
from turnout.store.sqlite_errors import translated


class SQLiteEnd:
    def __init__(self, url: str, write: bool) -> None:
        self.url = url
        self.path = sqlite_file(url)
        if write:
            self.conn = open_for_writing(self.path)
        else:
            if not self.path.exists():
                raise NoRecordStore(f"no record store at {self.path}")
            uri = self.path.resolve().as_uri() + "?mode=ro"
            with translated(self.path):
                self.conn = sqlite3.connect(uri, uri=True, isolation_level=None)

    def _columns(self, table: str) -> set[str]:
        with translated(self.path):
            return {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}

    def count(self, table: str) -> int:
        if not self._columns(table):
            return 0
        with translated(self.path):
            return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def rows(self, table: Table) -> Iterator[tuple[Any, ...]]:
        have = self._columns(table.name)
        if not have:
            return
        select = ", ".join(c if c in have else f"NULL AS {c}" for c in table.columns)
        order = table.order.replace("{seq}", "rowid")
        with translated(self.path):
            cursor = self.conn.execute(f"SELECT {select} FROM {table.name} ORDER BY {order}")
            while batch := cursor.fetchmany(1000):
                yield from batch

    def insert(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(table.columns))
        flags = [i for i, c in enumerate(table.columns) if c in table.booleans]
        if flags:
            rows = [_ints(row, flags) for row in rows]
        with translated(self.path):
            self.conn.execute("BEGIN")
            self.conn.executemany(
                f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks})", rows
            )
            self.conn.execute("COMMIT")

    def finish(self) -> None:
        pass

    def close(self) -> None:
        self.conn.close()


def _ints(row: tuple[Any, ...], flags: list[int]) -> tuple[Any, ...]:
    out = list(row)
    for i in flags:
        out[i] = None if out[i] is None else int(out[i])
    return tuple(out)
