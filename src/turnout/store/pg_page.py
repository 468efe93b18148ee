"""The SQL of `RecordReader.page` on PostgreSQL: the same filters and keyset as SQLite's.

Every time bound (the filter's and the cursor's) is a plain comparison on `started`, so the
planner prunes the day partitions a page cannot reach; a page walks `requests_started`
backwards from the cursor.
"""

from __future__ import annotations

from typing import Any

from turnout.store.page import RequestFilter

_SIGNALS = "(attrs->'intent'->'signals')"
# A filter's term, one placeholder each.
_TERMS = {
    "outcome": "outcome = %s",
    "model": "model = %s",
    "deployment": "EXISTS (SELECT 1 FROM json_array_elements_text(deployments) d WHERE d = %s)",
    "key_id": "key_id = %s",
    "tenant": "tenant = %s",
    "wire": "wire = %s",
    # A store may hold attrs without intent, or intent without signals: neither is an array.
    "intent": (
        "EXISTS (SELECT 1 FROM json_array_elements_text(CASE WHEN "
        f"json_typeof({_SIGNALS}) = 'array' THEN {_SIGNALS} END) s WHERE s = %s)"
    ),
    "since": "started >= %s",
    "until": "started < %s",
}
SELECT = (
    "id, started, model, operation, stream, outcome, http_status, deployments, attempts, "
    "prompt_tokens, completion_tokens, cost_usd, ttft_ms, latency_ms, error, migration, wire, "
    f"key_id, tenant, (attrs->>'wire_out') AS wire_out, {_SIGNALS} AS intent"
)


def page_query(
    where: RequestFilter, before: tuple[float, str] | None, limit: int
) -> tuple[str, list[Any]]:
    """(SQL, arguments) of one page, newest first."""
    terms: list[str] = []
    args: list[Any] = []
    for name, value in where.active().items():
        terms.append(_TERMS[name])
        args.append(value)
    if before is not None:
        # `started <= …` alone bounds the partitions; the rest breaks ties by id.
        terms.append("started <= %s AND (started < %s OR id < %s)")
        args.extend((before[0], before[0], before[1]))
    sql = f"SELECT {SELECT} FROM requests"
    if terms:
        sql += " WHERE " + " AND ".join(terms)
    sql += " ORDER BY started DESC, id DESC LIMIT %s"
    args.append(limit)
    return sql, args
