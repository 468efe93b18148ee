"""The SQL of `RecordReader.page` on SQLite: filters as WHERE terms, newest first by keyset."""

from __future__ import annotations

from typing import Any

from turnout.store.page import RequestFilter

# A filter's term, for filters that are one placeholder each.
_TERMS = {
    "outcome": "outcome = ?",
    "model": "model = ?",
    "deployment": "EXISTS (SELECT 1 FROM json_each(deployments) WHERE value = ?)",
    "key_id": "key_id = ?",
    "tenant": "tenant = ?",
    "wire": "wire = ?",
    "intent": "EXISTS (SELECT 1 FROM json_each(attrs, '$.intent.signals') WHERE value = ?)",
    "since": "started >= ?",
    "until": "started < ?",
}
# Columns a store written by an older version may lack.
_OPTIONAL = {"key_id", "tenant", "wire", "attrs"}


def page_query(
    select: str, known: set[str], where: RequestFilter, before: tuple[float, str] | None, limit: int
) -> tuple[str, list[Any]] | None:
    """(SQL, arguments); None when a filter names a column the store does not have yet."""
    terms: list[str] = []
    args: list[Any] = []
    for name, value in where.active().items():
        column = "attrs" if name == "intent" else name
        if column in _OPTIONAL and column not in known:
            return None  # nothing recorded can match
        terms.append(_TERMS[name])
        args.append(value)
    if before is not None:
        terms.append("(started < ? OR (started = ? AND id < ?))")
        args.extend((before[0], before[0], before[1]))
    sql = f"SELECT {select} FROM requests"
    if terms:
        sql += " WHERE " + " AND ".join(terms)
    sql += " ORDER BY started DESC, id DESC LIMIT ?"
    args.append(limit)
    return sql, args
