"""`RecordReader` on PostgreSQL: a connection from the shared pool per query, rows as dicts.

JSON columns come back decoded by the pool's loader and `stream` as a bool, so rows equal
SQLite's. A database whose tables do not exist yet reads as empty, as a new SQLite file does.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row

from turnout.store import pg_pool
from turnout.store.errors import NoRecordStore, RecordNotFound, StoreError
from turnout.store.events import MigrationEvent
from turnout.store.feedback import Feedback
from turnout.store.location import describe
from turnout.store.page import RequestFilter
from turnout.store.pg_events import COLUMNS as EVENT_COLUMNS
from turnout.store.pg_events import event_of
from turnout.store.pg_page import page_query
from turnout.store.read import Cursor, Request, ShadowTotal
from turnout.store.refusals import tally

_SUMMARY = (
    "id, started, model, operation, stream, outcome, http_status, deployments, attempts, "
    "prompt_tokens, completion_tokens, cost_usd, ttft_ms, latency_ms, error"
)
_SHADOW_OF = "(migration->>'shadow_of')"
_PREFIX = "(attrs->>'conversation_prefix')"
_CONVERSATION = "id, started, model, outcome, deployments, attempt_log, key_id, migration, attrs"
_BY_IDS = "SELECT * FROM requests WHERE id = ANY(%s)"
_FEEDBACK = "id, at, request_id, conversation_id, score, label, comment, key_id"


class PostgresReader:
    def __init__(self, url: str) -> None:
        self.url = url
        self.location = describe(url)
        try:
            self._pool = pg_pool.acquire(url, write=False)
        except StoreError as exc:
            if "does not exist" in str(exc):
                raise NoRecordStore(f"no record store at {self.location}") from None
            raise
        self._open = True

    def __enter__(self) -> PostgresReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            pg_pool.release(self.url)

    def _rows(
        self, sql: str, args: tuple[Any, ...] | list[Any] = (), *, dicts: bool = True
    ) -> list[Any]:
        with pg_pool.connection(self._pool, self.url) as conn:
            factory: Any = dict_row if dicts else tuple_row
            try:
                with conn.cursor(row_factory=factory) as cur:
                    return cur.execute(sql, args).fetchall()  # type: ignore[arg-type]
            except psycopg.errors.UndefinedTable:
                return []  # nothing recorded yet

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
        for column, value in (("key_id", key_id), ("outcome", outcome), ("model", model)):
            if value:
                where.append(f"{column} = %s")
                args.append(value)
        sql = (
            f"SELECT {_SUMMARY}, migration, wire, key_id, tenant, "
            "(attrs->>'wire_out') AS wire_out FROM requests"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        args.append(limit)
        return self._rows(sql + " ORDER BY started DESC LIMIT %s", args)

    def key_usage(self, key_id: str, since: float = 0.0) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT model, count(*) AS requests, sum(prompt_tokens)::bigint AS prompt_tokens, "
            "sum(completion_tokens)::bigint AS completion_tokens, sum(cost_usd) AS cost_usd "
            "FROM requests WHERE key_id = %s AND started >= %s GROUP BY model ORDER BY model",
            (key_id, since),
        )

    def page(
        self, where: RequestFilter, before: Cursor | None = None, limit: int = 50
    ) -> list[Request]:
        return self._rows(*page_query(where, before, limit))

    def key_spend(self, since: float, bucket_s: float) -> list[dict[str, Any]]:
        # trunc, as SQLite's CAST … AS INTEGER: the same bucket for the same float.
        rows = self._rows(
            "SELECT key_id, trunc(started / %s::float8)::bigint AS b, count(*), sum(cost_usd) "
            "FROM requests WHERE started >= %s AND key_id IS NOT NULL "
            'GROUP BY key_id, b ORDER BY b, key_id COLLATE "C"',
            (bucket_s, since),
            dicts=False,
        )
        return [
            {"key_id": k, "bucket": b * bucket_s, "requests": n, "cost_usd": usd}
            for k, b, n, usd in rows
        ]

    def key_refusals(self, since: float) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT key_id, http_status, events FROM requests "
            "WHERE outcome = 'rejected' AND started >= %s AND key_id IS NOT NULL",
            (since,),
            dicts=False,
        )
        return tally(rows)

    def request(self, request_id: str) -> Request:
        rows = self._rows(
            "SELECT * FROM requests WHERE id >= %s AND id < %s ORDER BY id LIMIT 2",
            (request_id, request_id + "\uffff"),
        )
        if not rows:
            raise RecordNotFound(f"no request with id {request_id!r}")
        exact = [r for r in rows if r["id"] == request_id]
        if len(rows) > 1 and not exact:
            raise RecordNotFound(f"id prefix {request_id!r} is ambiguous; give more characters")
        return dict(exact[0] if exact else rows[0])

    # -- routing -----------------------------------------------------------------------------

    def recent_attempts(self, limit: int = 2000) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT attempt_log FROM requests ORDER BY started DESC LIMIT %s", (limit,), dicts=False
        )
        out: list[dict[str, Any]] = []
        for (attempts,) in reversed(rows):
            out.extend(a for a in attempts or [] if isinstance(a, dict))
        return out

    # -- fingerprint: passive monitoring -------------------------------------------------------

    def requests_after(self, cursor: Cursor, limit: int = 1000) -> list[Request]:
        started, rid = cursor
        return self._rows(
            "SELECT id, started, model, attempt_log, response_body FROM requests "
            "WHERE (started, id) > (%s, %s) ORDER BY started, id LIMIT %s",
            (started, rid, limit),
        )

    # -- migration -----------------------------------------------------------------------------

    def replayable(
        self, *, since: float | None = None, outcomes: tuple[str, ...] = ()
    ) -> list[Request]:
        where, args = ["request_body IS NOT NULL", f"{_SHADOW_OF} IS NULL"], list[Any]()
        if since is not None:
            where.append("started >= %s")
            args.append(since)
        if outcomes:
            where.append("outcome = ANY(%s)")
            args.append(list(outcomes))
        sql = (
            "SELECT id, started, model, operation, deployments, request_body, response_body, "
            f"attempt_log, wire FROM requests WHERE {' AND '.join(where)} ORDER BY started"
        )
        return self._rows(sql, args)

    def shadow_pairs(
        self, model: str | None = None, limit: int = 1000
    ) -> list[tuple[Request, Request]]:
        shadow_of = "(s.migration->>'shadow_of')"
        sql = (
            f"SELECT s.* FROM requests s WHERE {shadow_of} IS NOT NULL "
            f"AND EXISTS (SELECT 1 FROM requests p WHERE p.id = {shadow_of})"
        )
        args: list[Any] = []
        if model:
            sql += " AND s.model = %s"
            args.append(model)
        sql += " ORDER BY s.started DESC LIMIT %s"
        args.append(limit)
        shadows = self._rows(sql, args)
        wanted = list({s["migration"]["shadow_of"] for s in shadows})
        primaries = {r["id"]: r for r in self._rows(_BY_IDS, (wanted,))} if wanted else {}
        return [(dict(primaries[s["migration"]["shadow_of"]]), s) for s in shadows]

    def shadow_totals(self, model: str | None = None) -> list[ShadowTotal]:
        sql = (
            "SELECT model, (migration->>'candidate') COLLATE \"C\", count(*), "
            "count(*) FILTER (WHERE outcome = 'completed'), coalesce(sum(cost_usd), 0) "
            f"FROM requests WHERE {_SHADOW_OF} IS NOT NULL"
        )
        args: list[Any] = []
        if model:
            sql += " AND model = %s"
            args.append(model)
        sql += " GROUP BY 1, 2 ORDER BY 1, 2"
        return [
            ShadowTotal(m, c, int(n), int(done), float(spent))
            for m, c, n, done, spent in self._rows(sql, args, dicts=False)
        ]

    def shadow_spent(self, model: str, candidate: str) -> float:
        rows = self._rows(
            "SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE model = %s "
            f"AND {_SHADOW_OF} IS NOT NULL AND migration->>'candidate' = %s",
            (model, candidate),
            dicts=False,
        )
        return float(rows[0][0]) if rows else 0.0

    def canary_stage(self, model: str, candidate: str, stage: int, since: float) -> list[Request]:
        return self._rows(
            "SELECT id, outcome, attempt_log, latency_ms, cost_usd, migration FROM requests "
            "WHERE model = %s AND started >= %s "
            "AND migration->'canary'->>'candidate' = %s "
            "AND migration->'canary'->>'stage' = %s "
            "AND migration->'canary'->>'status' = 'running' ORDER BY started",
            (model, since, candidate, str(int(stage))),
        )

    def migration_events(self, model: str | None = None, limit: int = 50) -> list[MigrationEvent]:
        sql = f"SELECT {EVENT_COLUMNS} FROM migration_events"
        args: list[Any] = []
        if model:
            sql += " WHERE model = %s"
            args.append(model)
        sql += " ORDER BY at DESC, seq DESC LIMIT %s"
        args.append(limit)
        rows = self._rows(sql, args, dicts=False)
        return [event_of(r) for r in reversed(rows)]

    # -- intent --------------------------------------------------------------------------------

    def conversations(self, *, since: float | None = None, bodies: bool = False) -> list[Request]:
        columns = _CONVERSATION + (", request_body, response_body" if bodies else "")
        sql = f"SELECT {columns} FROM requests WHERE {_PREFIX} IS NOT NULL"
        args: list[Any] = []
        if since is not None:
            sql += " AND started >= %s"
            args.append(since)
        return self._rows(sql + " ORDER BY started, id", args)

    def answer(self, prefix: str, before: float | None = None) -> Request | None:
        sql = f"SELECT {_CONVERSATION} FROM requests WHERE {_PREFIX} = %s"
        args: list[Any] = [prefix]
        if before is not None:
            sql += " AND started < %s"
            args.append(before)
        rows = self._rows(sql + " ORDER BY started DESC LIMIT 1", args)
        return rows[0] if rows else None

    def feedback(self, *, since: float | None = None) -> list[Feedback]:
        sql = f"SELECT {_FEEDBACK} FROM feedback"
        args: list[Any] = []
        if since is not None:
            sql += " WHERE at >= %s"
            args.append(since)
        rows = self._rows(sql + " ORDER BY at, id", args, dicts=False)
        return [Feedback(*r) for r in rows]
