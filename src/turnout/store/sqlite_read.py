"""`RecordReader` on the record's SQLite file: one read-only connection, one method per query."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from turnout.store.errors import NoRecordStore, RecordNotFound, StoreError
from turnout.store.events import MigrationEvent
from turnout.store.feedback import Feedback
from turnout.store.page import RequestFilter
from turnout.store.read import Cursor, Request, ShadowTotal
from turnout.store.refusals import tally
from turnout.store.sqlite_errors import translated
from turnout.store.sqlite_events import COLUMNS as EVENT_COLUMNS
from turnout.store.sqlite_events import NEWEST_FIRST, event_of
from turnout.store.sqlite_feedback import COLUMNS as FEEDBACK_COLUMNS
from turnout.store.sqlite_feedback import feedback_of
from turnout.store.sqlite_page import page_query

_JSON_COLUMNS = (
    "deployments",
    "events",
    "attempt_log",
    "request_body",
    "response_body",
    "migration",
    "attrs",
    "intent",
)
_SUMMARY = (
    "id, started, model, operation, stream, outcome, http_status, deployments, attempts, "
    "prompt_tokens, completion_tokens, cost_usd, ttft_ms, latency_ms, error"
)
_SHADOW_OF = "json_extract(migration, '$.shadow_of')"
_PREFIX = "json_extract(attrs, '$.conversation_prefix')"
_CONVERSATION = "id, started, model, outcome, deployments, attempt_log, key_id, migration, attrs"


class SQLiteReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        if not path.exists():
            raise NoRecordStore(f"no record store at {path}")
        uri = path.resolve().as_uri() + "?mode=ro"
        try:
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"record store {path}: cannot be opened: {exc}") from None
        self._conn.row_factory = sqlite3.Row
        self._known: dict[str, set[str]] = {}
        try:
            self._columns("requests")
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(f"{path} is not a turnout record store: {exc}") from None

    def _columns(self, table: str) -> set[str]:
        """A table's columns; none while the table does not exist (nothing recorded yet)."""
        if not self._known.get(table):  # looked up again until the table appears
            rows = self._conn.execute(f"PRAGMA table_info({table})").fetchall()
            self._known[table] = {r[1] for r in rows}
        return self._known[table]

    @property
    def _migration(self) -> bool:
        # A store no gateway of this version has opened yet lacks the column.
        with translated(self.path):
            return "migration" in self._columns("requests")

    def __enter__(self) -> SQLiteReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def _rows(self, table: str, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        with translated(self.path):
            if not self._columns(table):
                return []  # nothing recorded yet
            return self._conn.execute(sql, args).fetchall()

    # -- `turnout requests` and `turnout trace` ------------------------------------------------

    def requests(
        self,
        *,
        limit: int = 20,
        outcome: str | None = None,
        model: str | None = None,
        key_id: str | None = None,
    ) -> list[Request]:
        where: list[str] = []
        args: list[Any] = []
        if key_id:
            where.append("key_id = ?")
            args.append(key_id)
        if outcome:
            where.append("outcome = ?")
            args.append(outcome)
        if model:
            where.append("model = ?")
            args.append(model)
        sql = f"SELECT {self._summary()} FROM requests"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started DESC LIMIT ?"
        args.append(limit)
        return [_decode(r) for r in self._rows("requests", sql, args)]

    def _summary(self) -> str:
        """The columns `requests` returns, with NULL for those an old store lacks."""
        migration = "migration" if self._migration else "NULL AS migration"
        known = self._columns("requests")
        extra = ", ".join(c if c in known else f"NULL AS {c}" for c in ("wire", "key_id", "tenant"))
        wire_out = "json_extract(attrs, '$.wire_out')" if "attrs" in known else "NULL"
        return f"{_SUMMARY}, {migration}, {extra}, {wire_out} AS wire_out"

    def page(
        self, where: RequestFilter, before: Cursor | None = None, limit: int = 50
    ) -> list[Request]:
        with translated(self.path):
            known = self._columns("requests")
            intent = "json_extract(attrs, '$.intent.signals')" if "attrs" in known else "NULL"
            select = f"{self._summary()}, {intent} AS intent"
            query = page_query(select, known, where, before, limit) if known else None
        if query is None:
            return []
        return [_decode(r) for r in self._rows("requests", *query)]

    def key_usage(self, key_id: str, since: float = 0.0) -> list[dict[str, Any]]:
        if "key_id" not in self._columns("requests"):
            return []
        rows = self._rows(
            "requests",
            "SELECT model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd) "
            "FROM requests WHERE key_id = ? AND started >= ? GROUP BY model ORDER BY model",
            (key_id, since),
        )
        names = ("model", "requests", "prompt_tokens", "completion_tokens", "cost_usd")
        return [dict(zip(names, tuple(r), strict=True)) for r in rows]

    def key_spend(self, since: float, bucket_s: float) -> list[dict[str, Any]]:
        if "key_id" not in self._columns("requests"):
            return []
        rows = self._rows(
            "requests",
            "SELECT key_id, CAST(started / ? AS INTEGER) AS b, COUNT(*), SUM(cost_usd) "
            "FROM requests WHERE started >= ? AND key_id IS NOT NULL "
            "GROUP BY key_id, b ORDER BY b, key_id",
            (bucket_s, since),
        )
        return [
            {"key_id": k, "bucket": b * bucket_s, "requests": n, "cost_usd": usd}
            for k, b, n, usd in rows
        ]

    def key_refusals(self, since: float) -> list[dict[str, Any]]:
        if "key_id" not in self._columns("requests"):
            return []
        rows = self._rows(
            "requests",
            "SELECT key_id, http_status, events FROM requests "
            "WHERE outcome = 'rejected' AND started >= ? AND key_id IS NOT NULL",
            (since,),
        )
        return tally((k, status, orjson.loads(events)) for k, status, events in rows)

    def request(self, request_id: str) -> Request:
        rows = self._rows(
            "requests",
            "SELECT * FROM requests WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
            (request_id, request_id + "\uffff"),
        )
        if not rows:
            raise RecordNotFound(f"no request with id {request_id!r}")
        exact = [r for r in rows if r["id"] == request_id]
        if len(rows) > 1 and not exact:
            raise RecordNotFound(f"id prefix {request_id!r} is ambiguous; give more characters")
        return _with_migration(_decode(exact[0] if exact else rows[0]))

    # -- routing -----------------------------------------------------------------------------

    def recent_attempts(self, limit: int = 2000) -> list[dict[str, Any]]:
        rows = self._rows(
            "requests", "SELECT attempt_log FROM requests ORDER BY started DESC LIMIT ?", (limit,)
        )
        out: list[dict[str, Any]] = []
        for (log,) in reversed(rows):
            attempts = orjson.loads(log) if log else []
            out.extend(a for a in attempts if isinstance(a, dict))
        return out

    # -- fingerprint: passive monitoring -------------------------------------------------------

    def requests_after(self, cursor: Cursor, limit: int = 1000) -> list[Request]:
        started, rid = cursor
        rows = self._rows(
            "requests",
            "SELECT id, started, model, attempt_log, response_body FROM requests "
            "WHERE started > ? OR (started = ? AND id > ?) ORDER BY started, id LIMIT ?",
            (started, started, rid, limit),
        )
        return [_decode(r) for r in rows]

    # -- migration -----------------------------------------------------------------------------

    def replayable(
        self, *, since: float | None = None, outcomes: tuple[str, ...] = ()
    ) -> list[Request]:
        where, args = ["request_body IS NOT NULL"], list[Any]()
        if since is not None:
            where.append("started >= ?")
            args.append(since)
        if outcomes:
            where.append(f"outcome IN ({', '.join('?' * len(outcomes))})")
            args.extend(outcomes)
        if self._migration:  # a shadow is a candidate's answer, not recorded traffic
            where.append(f"{_SHADOW_OF} IS NULL")
        wire = "wire" if "wire" in self._columns("requests") else "NULL AS wire"
        sql = (
            "SELECT id, started, model, operation, deployments, request_body, response_body, "
            f"attempt_log, {wire} FROM requests WHERE {' AND '.join(where)} ORDER BY started"
        )
        return [_decode(r) for r in self._rows("requests", sql, args)]

    def shadow_pairs(
        self, model: str | None = None, limit: int = 1000
    ) -> list[tuple[Request, Request]]:
        if not self._migration:
            return []
        shadow_of = "json_extract(s.migration, '$.shadow_of')"
        sql = (
            f"SELECT s.* FROM requests s JOIN requests p ON p.id = {shadow_of} "
            f"WHERE {shadow_of} IS NOT NULL"
        )
        args: list[Any] = []
        if model:
            sql += " AND s.model = ?"
            args.append(model)
        sql += " ORDER BY s.started DESC LIMIT ?"
        args.append(limit)
        pairs = []
        for row in self._rows("requests", sql, args):
            shadow = _decode(row)
            (primary,) = self._rows(
                "requests",
                "SELECT * FROM requests WHERE id = ?",
                (shadow["migration"]["shadow_of"],),
            )
            pairs.append((_decode(primary), shadow))
        return pairs

    def shadow_totals(self, model: str | None = None) -> list[ShadowTotal]:
        if not self._migration:
            return []
        sql = (
            "SELECT model, json_extract(migration, '$.candidate'), count(*), "
            "sum(CASE WHEN outcome = 'completed' THEN 1 ELSE 0 END), coalesce(sum(cost_usd), 0) "
            f"FROM requests WHERE {_SHADOW_OF} IS NOT NULL"
        )
        args: list[Any] = []
        if model:
            sql += " AND model = ?"
            args.append(model)
        sql += " GROUP BY 1, 2 ORDER BY 1, 2"
        return [
            ShadowTotal(m, c, int(n), int(done), float(spent))
            for m, c, n, done, spent in self._rows("requests", sql, args)
        ]

    def shadow_spent(self, model: str, candidate: str) -> float:
        if not self._migration:
            return 0.0
        rows = self._rows(
            "requests",
            "SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE model = ? "
            f"AND {_SHADOW_OF} IS NOT NULL AND json_extract(migration, '$.candidate') = ?",
            (model, candidate),
        )
        return float(rows[0][0]) if rows else 0.0

    def canary_stage(self, model: str, candidate: str, stage: int, since: float) -> list[Request]:
        if not self._migration:
            return []
        rows = self._rows(
            "requests",
            "SELECT id, outcome, attempt_log, latency_ms, cost_usd, migration FROM requests "
            "WHERE model = ? AND started >= ? "
            "AND json_extract(migration, '$.canary.candidate') = ? "
            "AND json_extract(migration, '$.canary.stage') = ? "
            "AND json_extract(migration, '$.canary.status') = 'running' ORDER BY started",
            (model, since, candidate, stage),
        )
        return [_decode(r) for r in rows]

    def migration_events(self, model: str | None = None, limit: int = 50) -> list[MigrationEvent]:
        sql = f"SELECT {EVENT_COLUMNS} FROM migration_events"
        args: list[Any] = []
        if model:
            sql += " WHERE model = ?"
            args.append(model)
        sql += f" {NEWEST_FIRST} LIMIT ?"
        args.append(limit)
        rows = self._rows("migration_events", sql, args)
        return [event_of(tuple(r)) for r in reversed(rows)]

    # -- intent --------------------------------------------------------------------------------

    def _has_attrs(self) -> bool:
        with translated(self.path):
            return {"attrs", "migration", "key_id"} <= self._columns("requests")

    def conversations(self, *, since: float | None = None, bodies: bool = False) -> list[Request]:
        if not self._has_attrs():
            return []
        columns = _CONVERSATION + (", request_body, response_body" if bodies else "")
        sql = f"SELECT {columns} FROM requests WHERE {_PREFIX} IS NOT NULL"
        args: list[Any] = []
        if since is not None:
            sql += " AND started >= ?"
            args.append(since)
        sql += " ORDER BY started, id"
        return [_decode(r) for r in self._rows("requests", sql, args)]

    def answer(self, prefix: str, before: float | None = None) -> Request | None:
        if not self._has_attrs():
            return None
        sql = f"SELECT {_CONVERSATION} FROM requests WHERE {_PREFIX} = ?"
        args: list[Any] = [prefix]
        if before is not None:
            sql += " AND started < ?"
            args.append(before)
        rows = self._rows("requests", sql + " ORDER BY started DESC LIMIT 1", args)
        return _decode(rows[0]) if rows else None

    def feedback(self, *, since: float | None = None) -> list[Feedback]:
        sql = f"SELECT {FEEDBACK_COLUMNS} FROM feedback"
        args: list[Any] = []
        if since is not None:
            sql += " WHERE at >= ?"
            args.append(since)
        return [feedback_of(tuple(r)) for r in self._rows("feedback", sql + " ORDER BY at", args)]


def _decode(row: sqlite3.Row) -> Request:
    out = dict(row)
    for col in _JSON_COLUMNS:
        if out.get(col) is not None:
            out[col] = orjson.loads(out[col])
    if "stream" in out:
        out["stream"] = bool(out["stream"])
    return out


def _with_migration(record: Request) -> Request:
    record.setdefault("migration", None)
    return record
