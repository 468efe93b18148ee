"""The record's schema is versioned: a `schema_version` table lists the migrations applied,
in order, on SQLite and on PostgreSQL alike. A gateway applies what is missing when it opens
the store; `turnout store migrate` does so on its own and says what it applied."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from turnout.store.errors import StoreError
from turnout.store.location import describe, is_postgres, postgres_module


@dataclass(frozen=True, slots=True)
class Applied:
    version: int
    name: str
    note: str = ""  # how it went: "created", "adopted …"

    def describe(self) -> str:
        return f"{self.version}: {self.name}" + (f" ({self.note})" if self.note else "")


def too_new(where: str, found: int, latest: int) -> StoreError:
    return StoreError(
        f"record store {where}: its schema is at version {found}, written by a newer turnout; "
        f"this one knows versions up to {latest}"
    )


def migrate(url: str | Path) -> list[Applied]:
    """Bring the store at `url` to the latest schema (creating it if absent); what was applied."""
    if is_postgres(url):
        applied: list[Applied] = postgres_module("pg_schema").migrate_url(str(url))
        return applied
    from turnout.store.location import sqlite_file
    from turnout.store.sqlite import open_for_writing
    from turnout.store.sqlite_schema import migrate as migrate_sqlite

    conn = open_for_writing(sqlite_file(url), migrate=False)
    try:
        return migrate_sqlite(conn, describe(url))
    finally:
        conn.close()
