"""The two ends of a copy: a store read table by table, or written batch by batch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from turnout.store.copy_tables import Table
from turnout.store.location import is_postgres, postgres_module


class End(Protocol):
    url: str

    def count(self, table: str) -> int:
        """Rows in `table`; 0 if the store has no such table."""
        ...

    def rows(self, table: Table) -> Iterator[tuple[Any, ...]]:
        """Its rows, `table.columns` in order (None for a column an older store lacks)."""
        ...

    def insert(self, table: Table, rows: list[tuple[Any, ...]]) -> None: ...

    def finish(self) -> None:
        """After the last insert: what the destination derives from the rows copied."""
        ...

    def close(self) -> None: ...


def open_end(url: str, write: bool) -> End:
    if is_postgres(url):
        return postgres_module("pg_copy").PostgresEnd(url, write)
    from turnout.store.sqlite_copy import SQLiteEnd

    return SQLiteEnd(url, write)
