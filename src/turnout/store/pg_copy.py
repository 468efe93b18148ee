"""A PostgreSQL record as one end of `turnout store copy`: read with a server-side cursor,
written with COPY. JSON travels as its text, so bodies arrive exactly as they were kept."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads

from turnout.store.copy_tables import Table
from turnout.store.errors import NoRecordStore, StoreError
from turnout.store.location import describe
from turnout.store.pg_errors import translated
from turnout.store.pg_partitions import Partitions, day_of
from turnout.store.pg_schema import migrate


def _text(data: Any) -> str:
    return bytes(data).decode() if not isinstance(data, str) else data


class PostgresEnd:
    def __init__(self, url: str, write: bool) -> None:
        self.url = url
        try:
            with translated(url):
                self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except StoreError as exc:
            if "does not exist" in str(exc):
                raise NoRecordStore(f"no record store at {describe(url)}") from None
            raise
        set_json_loads(_text, self.conn)
        self.parts = Partitions()
        if write:
            with translated(url):
                migrate(self.conn, describe(url))

    def _exists(self, table: str) -> bool:
        with translated(self.url):
            row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        return bool(row and row[0])

    def _columns(self, table: str) -> set[str]:
        with translated(self.url):
            rows = self.conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = %s AND table_schema = current_schema()",
                (table,),
            ).fetchall()
        return {r[0] for r in rows}

    def count(self, table: str) -> int:
        if not self._exists(table):
            return 0
        with translated(self.url):
            row = self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # type: ignore[arg-type]
        return int(row[0]) if row else 0

    def rows(self, table: Table) -> Iterator[tuple[Any, ...]]:
        if not self._exists(table.name):
            return
        have = self._columns(table.name)  # a source at an older schema lacks some
        select = ", ".join(c if c in have else f"NULL AS {c}" for c in table.columns)
        order = table.order.replace("{seq}", "seq")
        sql = f"SELECT {select} FROM {table.name} ORDER BY {order}"
        name = f"copy_{uuid.uuid4().hex[:8]}"
        with translated(self.url), self.conn.transaction(), self.conn.cursor(name=name) as cur:
            cur.itersize = 1000
            cur.execute(sql)  # type: ignore[arg-type]
            yield from cur

    def insert(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        flags = [i for i, c in enumerate(table.columns) if c in table.booleans]
        with translated(self.url), self.conn.transaction():
            if table.name == "requests":
                started = table.columns.index("started")
                self.parts.ensure(self.conn, {day_of(r[started]) for r in rows})
            with self.conn.cursor() as cur:
                statement = f"COPY {table.name} ({', '.join(table.columns)}) FROM STDIN"
                with cur.copy(statement) as copy:  # type: ignore[arg-type]
                    for row in rows:
                        copy.write_row(_clean(row, flags))

    def finish(self) -> None:
        with translated(self.url):
            self.conn.execute(
                "SELECT setval('client_keys_revision', "
                "greatest((SELECT max(revision) FROM client_keys), 1))"
            )

    def close(self) -> None:
        self.conn.close()


def _clean(row: tuple[Any, ...], flags: list[int]) -> tuple[Any, ...]:
    """Booleans as PostgreSQL takes them; NUL, which its text cannot hold, replaced."""
    out = list(row)
    for i in flags:
        out[i] = None if out[i] is None else bool(out[i])
    for i, value in enumerate(out):
        if type(value) is str and "\x00" in value:
            out[i] = value.replace("\x00", "\ufffd")
    return tuple(out)
