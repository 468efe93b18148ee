"""Migration events in PostgreSQL; `seq` keeps the order of events of one instant."""

from __future__ import annotations

from typing import Any

import orjson

from turnout.store import pg_pool
from turnout.store.errors import StoreError
from turnout.store.events import MigrationEvent
from turnout.store.location import describe
from turnout.store.terms import FENCE

COLUMNS = "at, model, mode, candidate, kind, stage, percent, detail"
TYPED = (
    "%s::double precision, %s::text, %s::text, %s::text, %s::text, %s::integer, "
    "%s::double precision, %s::json, %s::text"
)


class PostgresEventLog:
    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = pg_pool.acquire(url)

    def append(
        self, event: MigrationEvent, decision: str | None = None, term: int | None = None
    ) -> bool:
        detail = orjson.dumps(event.detail, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        args: tuple[Any, ...] = (
            *(event.at, event.model, event.mode, event.candidate, event.kind, event.stage),
            *(event.percent, detail, decision),
        )
        values = "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        if term is not None:  # a SELECT's parameters carry no column types: cast them
            values = f"SELECT {TYPED} WHERE " + FENCE.format(mark="%s")
            args += (term,)
        sql = f"INSERT INTO migration_events ({COLUMNS}, decision) {values} ON CONFLICT DO NOTHING"
        with pg_pool.connection(self._live(), self.url) as conn:
            cursor = conn.execute(sql, args)  # type: ignore[arg-type]
            return cursor.rowcount == 1

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
