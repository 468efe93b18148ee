"""Reading the record back: for `turnout requests`, `turnout trace` and other capabilities."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from turnout.errors import TurnoutError
from turnout.store.sqlite import sqlite_path

_JSON_COLUMNS = (
    "deployments",
    "events",
    "attempt_log",
    "request_body",
    "response_body",
    "migration",
)


class RecordNotFound(TurnoutError, LookupError):
    pass


def _open(url: str) -> sqlite3.Connection:
    path: Path = sqlite_path(url)
    if not path.exists():
        raise FileNotFoundError(f"no record store at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for col in _JSON_COLUMNS:
        if out.get(col) is not None:
            out[col] = orjson.loads(out[col])
    out["stream"] = bool(out["stream"])
    return out


def list_requests(
    url: str, *, limit: int = 20, outcome: str | None = None, model: str | None = None
) -> list[dict[str, Any]]:
    where: list[str] = []
    args: list[Any] = []
    if outcome:
        where.append("outcome = ?")
        args.append(outcome)
    if model:
        where.append("model = ?")
        args.append(model)
    sql = "SELECT id, started, model, operation, stream, outcome, http_status, deployments, "
    sql += "attempts, prompt_tokens, completion_tokens, cost_usd, ttft_ms, latency_ms, error, "
    with _open(url) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
        # A store no gateway of this version has opened yet lacks the column.
        sql += "migration " if "migration" in columns else "NULL AS migration "
        sql += "FROM requests"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started DESC LIMIT ?"
        args.append(limit)
        return [_decode(r) for r in conn.execute(sql, args)]


def get_request(url: str, request_id: str) -> dict[str, Any]:
    """One record by id, or by a unique prefix of it."""
    with _open(url) as conn:
        rows = conn.execute(
            "SELECT * FROM requests WHERE id >= ? AND id < ? LIMIT 2",
            (request_id, request_id + "\uffff"),
        ).fetchall()
    if not rows:
        raise RecordNotFound(f"no request with id {request_id!r}")
    exact = [r for r in rows if r["id"] == request_id]
    if len(rows) > 1 and not exact:
        raise RecordNotFound(f"id prefix {request_id!r} is ambiguous; give more characters")
    return _decode(exact[0] if exact else rows[0])


def recent_attempts(url: str, limit: int = 2000) -> list[dict[str, Any]]:
    """The attempts of the latest `limit` requests, oldest first: what estimates warm up from."""
    try:
        conn = _open(url)
    except FileNotFoundError:
        return []
    try:
        rows = conn.execute(
            "SELECT attempt_log FROM requests ORDER BY started DESC LIMIT ?", (limit,)
        ).fetchall()
    finally:
        conn.close()
    out: list[dict[str, Any]] = []
    for (log,) in reversed(rows):
        attempts = orjson.loads(log) if log else []
        out.extend(a for a in attempts if isinstance(a, dict))
    return out
