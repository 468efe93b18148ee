"""Migration events in PostgreSQL; `seq` keeps the order of events of one instant."""

from __future__ import annotations

from typing import Any

import orjson

from turnout.store import pg_pool
from turnout.store.errors import StoreError
from turnout.store.events import MigrationEvent
from turnout.store.location import describe

COLUMNS = "at, model, mode, candidate, kind, stage, percent, detail"


class PostgresEventLog:
    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = pg_pool.acquire(url)

    def append(self, event: MigrationEvent) -> None:
        detail = orjson.dumps(event.detail, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        with pg_pool.connection(self._live(), self.url) as conn:
            conn.execute(
                f"INSERT INTO migration_events ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (event.at, event.model, event.mode, event.candidate, event.kind, event.stage,
                 event.percent, detail),
            )  # fmt: skip

    def latest(self, model: str, mode: str, candidate: str) -> MigrationEvent | None:
        with pg_pool.connection(self._live(), self.url) as conn:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM migration_events "
                "WHERE model = %s AND mode = %s AND candidate = %s "
                "ORDER BY at DESC, seq DESC LIMIT 1",
                (model, mode, candidate),
            ).fetchone()
        return None if row is None else event_of(row)

    def close(self) -> None:
        if self._pool is not None:
            self._pool = None
            pg_pool.release(self.url)

    def _live(self) -> Any:
        if self._pool is None:
            raise StoreError(
                f"record store {describe(self.url)}: the migration event log is closed"
            )
        return self._pool


def event_of(row: tuple[Any, ...]) -> MigrationEvent:
    at, model, mode, candidate, kind, stage, percent, detail = row
    return MigrationEvent(at, model, mode, candidate, kind, stage, percent, detail or {})
