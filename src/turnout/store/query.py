"""One read each, for callers that need no more: `turnout requests`, `turnout trace`, warm-up.

Shorthands over `RecordReader` (see `turnout.store.read`), which holds the queries.
"""

from __future__ import annotations

from typing import Any

from turnout.store.errors import NoRecordStore, RecordNotFound
from turnout.store.read import Request, open_reader

__all__ = ["RecordNotFound", "get_request", "list_requests", "recent_attempts"]


def list_requests(
    url: str,
    *,
    limit: int = 20,
    outcome: str | None = None,
    model: str | None = None,
    key_id: str | None = None,
) -> list[Request]:
    with open_reader(url) as reader:
        return reader.requests(limit=limit, outcome=outcome, model=model, key_id=key_id)


def get_request(url: str, request_id: str) -> Request:
    """One record by id, or by a unique prefix of it."""
    with open_reader(url) as reader:
        return reader.request(request_id)


def recent_attempts(url: str, limit: int = 2000) -> list[dict[str, Any]]:
    """The attempts of the latest `limit` requests, oldest first: what estimates warm up from."""
    try:
        reader = open_reader(url)
    except NoRecordStore:
        return []
    with reader:
        return reader.recent_attempts(limit)
