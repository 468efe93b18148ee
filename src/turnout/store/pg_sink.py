"""The record writer's PostgreSQL sink: multi-row upserts through the shared pool.

A run recorded again (intent attribution updates it) replaces its row, as in SQLite. While
the server cannot be reached every call raises one of `failures`, and the writer keeps the
batch; the pool replaces the connections the outage cut.
"""

from __future__ import annotations

import logging
import time
from functools import cache
from typing import Any

import psycopg

from turnout.config.schema import Retention
from turnout.lifecycle.run import Run
from turnout.store import pg_pool
from turnout.store.errors import StoreError
from turnout.store.location import describe
from turnout.store.pg_errors import UNREACHABLE, translated
from turnout.store.pg_partitions import Partitions, day_of, prune
from turnout.store.pg_schema import migrate_url
from turnout.store.retention import Pruned
from turnout.store.rows import bare_row
from turnout.store.sqlite import COLUMNS, Recovery

log = logging.getLogger("turnout.store")

NAMES = [c.strip() for c in COLUMNS.split(",")]
STREAM = NAMES.index("stream")
TAKE_TIMEOUT_S = 2.0  # a writer waits this long for a connection before calling the store down
ROW_ERRORS = (psycopg.DataError, psycopg.IntegrityError, OverflowError, ValueError, TypeError)
ERASE_BODIES = (
    "UPDATE requests SET request_body = NULL, response_body = NULL, attrs = jsonb_set("
    "coalesce(attrs::jsonb, '{}'), '{responses}', coalesce(attrs::jsonb -> 'responses', '{}') "
    "|| '{\"deleted\": true}')::json WHERE id = %s"
)


@cache
def upsert(n: int) -> str:
    """One statement writing `n` rows; a recorded run written again replaces its row."""
    row = "(" + ", ".join(["%s"] * len(NAMES)) + ")"
    updates = ", ".join(f"{c} = excluded.{c}" for c in NAMES if c not in ("id", "started"))
    return (
        f"INSERT INTO requests ({COLUMNS}) VALUES {', '.join([row] * n)} "
        f"ON CONFLICT (id, started) DO UPDATE SET {updates}"
    )


def pg_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A record row as PostgreSQL takes it: `stream` a boolean, no NUL in text (which
    PostgreSQL cannot store; SQLite could)."""
    out = list(row)
    out[STREAM] = bool(out[STREAM])
    for i, value in enumerate(out):
        if type(value) is str and "\x00" in value:
            out[i] = value.replace("\x00", "\ufffd")
    return tuple(out)


class PostgresSink:
    failures = (*UNREACHABLE, psycopg.DatabaseError, psycopg.InterfaceError)
    buffers = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.location = describe(url)
        self.salvaged = 0
        self.pool: Any = None
        self.parts = Partitions()

    def check(self) -> None:
        migrate_url(self.url)

    def open(self) -> Recovery:
        self.pool = pg_pool.acquire(self.url)
        with pg_pool.connection(self.pool, self.url) as conn:
            self.parts.ahead(conn, time.time())
            records = _count(conn)
        return Recovery(False, 0, records, True, "ok")

    def write(self, runs: list[Run], rows: list[tuple[Any, ...]], record_bodies: str) -> int:
        latest: dict[str, int] = {}  # a run queued twice in one batch: its last record wins
        for i, row in enumerate(rows):
            latest[row[0]] = i
        keep = sorted(latest.values())
        batch = [(runs[i], pg_row(rows[i])) for i in keep]
        with self.pool.connection(timeout=TAKE_TIMEOUT_S) as conn:
            self.parts.ensure(conn, {day_of(row[1]) for _, row in batch})
            try:
                with conn.transaction():
                    conn.execute(upsert(len(batch)), [v for _, row in batch for v in row])
                return 0
            except ROW_ERRORS:
                pass  # one row the database refused: find it below, keep the others
            return self._one_by_one(conn, batch, record_bodies)

    def _one_by_one(
        self, conn: psycopg.Connection, batch: list[tuple[Run, tuple[Any, ...]]], mode: str
    ) -> int:
        lost = 0
        with conn.transaction():
            for run, row in batch:
                try:
                    with conn.transaction():  # a savepoint: one refusal spares the others
                        conn.execute(upsert(1), row)
                    continue
                except ROW_ERRORS as exc:
                    bare = pg_row(bare_row(run, mode, exc))
                try:
                    with conn.transaction():
                        self.parts.ensure(conn, {day_of(bare[1])})
                        conn.execute(upsert(1), bare)
                    self.salvaged += 1
                except ROW_ERRORS as again:
                    lost += 1
                    log.warning("store %s: record %r lost (%s)", self.location, run.id, again)
        return lost

    def probe(self) -> None:
        with self.pool.connection(timeout=TAKE_TIMEOUT_S) as conn:
            conn.execute("SELECT 1")

    def prune(self, retention: Retention, now: float) -> Pruned:
        with self.pool.connection(timeout=TAKE_TIMEOUT_S) as conn:
            self.parts.ahead(conn, now)
            return prune(conn, retention, now, self.parts)

    def erase_bodies(self, request_id: str) -> bool:
        try:
            with translated(self.url), self.pool.connection(timeout=10) as conn:
                return conn.execute(ERASE_BODIES, (request_id,)).rowcount > 0
        except StoreError as exc:
            raise StoreError(f"cannot erase {request_id!r}: {exc}") from None

    def close(self) -> None:
        if self.pool is not None:
            self.pool = None
            pg_pool.release(self.url)


def _count(conn: psycopg.Connection) -> int:
    """How many records: the planner's estimate for a large table (an exact count of millions
    of rows would hold up the start), else exact."""
    row = conn.execute(
        "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'requests'::regclass"
    ).fetchone()
    estimate = int(row[0]) if row else 0
    if estimate > 1_000_000:
        return estimate
    row = conn.execute("SELECT count(*) FROM requests").fetchone()
    return int(row[0]) if row else 0
