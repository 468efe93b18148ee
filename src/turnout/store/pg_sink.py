"""The record writer's PostgreSQL sink: multi-row upserts on a connection of its own.

A run recorded again (intent attribution updates it) replaces its row, as in SQLite. The
writer is one thread writing one batch at a time, so it holds one connection rather than a
pool's: when a call fails the connection is dropped, and the next try (paced by the writer's
backoff) connects afresh, so the writer is back within one pause of the server's return.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads

from turnout.config.schema import Retention
from turnout.lifecycle.run import Run
from turnout.store import pg_pool
from turnout.store.errors import StoreError
from turnout.store.location import describe
from turnout.store.pg_errors import UNREACHABLE, translated
from turnout.store.pg_partitions import Partitions, day_of, prune
from turnout.store.pg_schema import migrate, migrate_url
from turnout.store.retention import Pruned
from turnout.store.rows import bare_row
from turnout.store.sqlite import COLUMNS, Recovery

log = logging.getLogger("turnout.store")

NAMES = [c.strip() for c in COLUMNS.split(",")]
# Each column's type as the statement receives it: one array per column (`unnest`), so the
# statement's text is short and the same for any batch (parsed once), and rows cost parameters,
# not placeholders. JSON travels as text and is cast on the server.
TYPES = dict.fromkeys(NAMES, "text") | {
    **dict.fromkeys(("started", "ended", "cost_usd", "ttft_ms", "latency_ms"), "float8"),
    **dict.fromkeys(("http_status", "attempts", "prompt_tokens", "completion_tokens"), "int8"),
    "stream": "bool",
}
JSON = ("deployments", "events", "attempt_log", "request_body", "response_body", "migration")
JSON += ("attrs",)
_FLOATS = [i for i, c in enumerate(NAMES) if TYPES[c] == "float8"]
_INTS = [i for i, c in enumerate(NAMES) if TYPES[c] == "int8"]
STREAM = NAMES.index("stream")
UPSERT = (
    f"INSERT INTO requests ({COLUMNS}) SELECT "
    + ", ".join(f"{c}::json" if c in JSON else c for c in NAMES)
    + " FROM unnest("
    + ", ".join(f"%b::{TYPES[c]}[]" for c in NAMES)
    + f") AS t({COLUMNS}) ON CONFLICT (id, started) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in NAMES if c not in ("id", "started"))
)
CONNECT_TIMEOUT_S = 2  # libpq's least; a refused connection fails at once
ROW_ERRORS = (psycopg.DataError, psycopg.IntegrityError, OverflowError, ValueError, TypeError)
ERASE_BODIES = (
    "UPDATE requests SET request_body = NULL, response_body = NULL, attrs = jsonb_set("
    "coalesce(attrs::jsonb, '{}'), '{responses}', coalesce(attrs::jsonb -> 'responses', '{}') "
    "|| '{\"deleted\": true}')::json WHERE id = %s"
)


def columns_of(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column, the statement's parameters."""
    return [list(column) for column in zip(*rows, strict=True)]


def pg_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A record row as PostgreSQL takes it: `stream` a boolean, numbers of one type per
    column, no NUL in text (which PostgreSQL cannot store; SQLite could)."""
    out = list(row)
    out[STREAM] = bool(out[STREAM])
    for i in _FLOATS:
        if out[i] is not None:
            out[i] = float(out[i])
    for i in _INTS:
        if out[i] is not None:
            out[i] = int(out[i])
    for i, value in enumerate(out):
        if type(value) is str and "\x00" in value:
            out[i] = value.replace("\x00", "\ufffd")
    return tuple(out)


class PostgresSink:
    failures = (*UNREACHABLE, psycopg.DatabaseError, psycopg.InterfaceError)
    buffers = True
    batch_rows = 256  # one round trip and one commit for many slices

    def __init__(self, url: str) -> None:
        self.url = url
        self.location = describe(url)
        self.salvaged = 0
        self.conn: psycopg.Connection | None = None
        self.pool: object | None = None
        self.parts = Partitions()

    def check(self) -> None:
        migrate_url(self.url)

    def _connection(self) -> psycopg.Connection:
        if self.conn is not None and (self.conn.closed or self.conn.broken):
            self._drop()
        if self.conn is None:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="turnout-writer",
            )
            set_json_loads(orjson.loads, conn)
            # The writer commits a slice at a time; waiting for each to reach the disk held it
            # to a few hundred rows/s. Like SQLite's synchronous=NORMAL: a crash of the server
            # may cost the last fraction of a second of records, never consistency.
            conn.execute("SET synchronous_commit = off")
            self.conn = conn
        return self.conn

    def _drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
        self.parts = Partitions()  # a restored server may have lost what was made

    def open(self) -> Recovery:
        with translated(self.url):
            conn = self._connection()
            migrate(conn, self.location)
            self.parts.ahead(conn, time.time())
            records = _count(conn)
        # The process's pool lives as long as its writer: the readers a gateway opens now and
        # then (canary evidence, stored responses) take a connection, not a new pool.
        self.pool = pg_pool.acquire(self.url)
        return Recovery(False, 0, records, True, "ok")

    def write(self, runs: list[Run], rows: list[tuple[Any, ...]], record_bodies: str) -> int:
        latest: dict[str, int] = {}  # a run queued twice in one batch: its last record wins
        for i, row in enumerate(rows):
            latest[row[0]] = i
        batch = [(runs[i], pg_row(rows[i])) for i in sorted(latest.values())]
        try:
            conn = self._connection()
            # A start no day holds (NaN) finds no partition: that row is refused, and salvaged.
            self.parts.ensure(conn, {day_of(row[1]) for _, row in batch if math.isfinite(row[1])})
            try:
                # One statement, so one transaction without a BEGIN and a COMMIT to wait for.
                conn.execute(UPSERT, columns_of([row for _, row in batch]))
                return 0
            except ROW_ERRORS:
                pass  # one row the database refused: find it below, keep the others
            return self._one_by_one(conn, batch, record_bodies)
        except self.failures:
            self._drop()
            raise

    def _one_by_one(
        self, conn: psycopg.Connection, batch: list[tuple[Run, tuple[Any, ...]]], mode: str
    ) -> int:
        lost = 0
        with conn.transaction():
            for run, row in batch:
                try:
                    with conn.transaction():  # a savepoint: one refusal spares the others
                        conn.execute(UPSERT, columns_of([row]))
                    continue
                except ROW_ERRORS as exc:
                    bare = pg_row(bare_row(run, mode, exc))
                try:
                    with conn.transaction():
                        if math.isfinite(bare[1]):
                            self.parts.ensure(conn, {day_of(bare[1])})
                        conn.execute(UPSERT, columns_of([bare]))
                    self.salvaged += 1
                except ROW_ERRORS as again:
                    lost += 1
                    log.warning("store %s: record %r lost (%s)", self.location, run.id, again)
        return lost

    def probe(self) -> None:
        try:
            self._connection().execute("SELECT 1")
        except self.failures:
            self._drop()
            raise

    def prune(self, retention: Retention, now: float) -> Pruned:
        try:
            conn = self._connection()
            self.parts.ahead(conn, now)
            return prune(conn, retention, now, self.parts)
        except self.failures:
            self._drop()
            raise

    def erase_bodies(self, request_id: str) -> bool:
        try:
            with translated(self.url):
                return self._connection().execute(ERASE_BODIES, (request_id,)).rowcount > 0
        except StoreError as exc:
            self._drop()
            raise StoreError(f"cannot erase {request_id!r}: {exc}") from None

    def close(self) -> None:
        self._drop()
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
