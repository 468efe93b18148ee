"""The record's read API: every package reads recorded requests through it, never with SQL.

`open_reader(url)` picks the implementation from the store URL; callers see only this protocol,
plain dicts and dataclasses, and the errors of `turnout.store.errors`. A request comes back as a
dict of its columns, with the JSON ones (`deployments`, `events`, `attempt_log`, the bodies,
`migration`) decoded and `stream` a bool.

Reads of a store that exists but holds no requests yet (nothing recorded, or a store written
before a column existed) return nothing rather than fail. A store that does not exist raises
`NoRecordStore`; one that is not a turnout store raises `StoreError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from turnout.store.events import MigrationEvent
from turnout.store.feedback import Feedback
from turnout.store.location import is_postgres, postgres_module, sqlite_file
from turnout.store.page import RequestFilter

Request = dict[str, Any]
# Where an incremental reader stopped: (started, id) of the last request it saw.
Cursor = tuple[float, str]


@dataclass(frozen=True, slots=True)
class ShadowTotal:
    """What one candidate's shadows of one model came to."""

    model: str
    candidate: str
    shadows: int
    completed: int
    spent_usd: float


class RecordReader(Protocol):
    location: str  # where the store is, for messages (never credentials)

    def __enter__(self) -> RecordReader: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def close(self) -> None: ...

    # -- `turnout requests` and `turnout trace` ------------------------------------------------

    def requests(
        self,
        *,
        limit: int = 20,
        outcome: str | None = None,
        model: str | None = None,
        key_id: str | None = None,
    ) -> list[Request]:
        """Newest first, without the bodies, events and attempts; `wire_out` is the upstream
        format of the last attempt."""
        ...

    def page(
        self, where: RequestFilter, before: Cursor | None = None, limit: int = 50
    ) -> list[Request]:
        """Newest first, the columns of `requests` and `intent` (the signals, or None), started
        before the (started, id) `before`: a keyset page for browsing the record."""
        ...

    def request(self, request_id: str) -> Request:
        """One request, all columns, by id or by a unique prefix of it; else RecordNotFound."""
        ...

    def key_usage(self, key_id: str, since: float = 0.0) -> list[dict[str, Any]]:
        """Per model, what one client key's requests since `since` came to: model, requests,
        prompt_tokens, completion_tokens, cost_usd."""
        ...

    def key_spend(self, since: float, bucket_s: float) -> list[dict[str, Any]]:
        """What each key's requests since `since` cost, in buckets of `bucket_s` seconds from
        the epoch: key_id, bucket (its start), requests, cost_usd; oldest bucket first."""
        ...

    def key_refusals(self, since: float) -> list[dict[str, Any]]:
        """Each key's rejected requests since `since` by reason: key_id, code (the refusal's
        error code, else its HTTP status as text), requests."""
        ...

    # -- routing -----------------------------------------------------------------------------

    def recent_attempts(self, limit: int = 2000) -> list[dict[str, Any]]:
        """The attempts of the latest `limit` requests, oldest first."""
        ...

    # -- fingerprint: passive monitoring -------------------------------------------------------

    def requests_after(self, cursor: Cursor, limit: int = 1000) -> list[Request]:
        """Up to `limit` requests after `cursor`, oldest first: id, started, model, attempt_log,
        response_body."""
        ...

    # -- migration -----------------------------------------------------------------------------

    def replayable(
        self, *, since: float | None = None, outcomes: tuple[str, ...] = ()
    ) -> list[Request]:
        """Requests recorded with a body, shadows left out, oldest first: id, started, model,
        operation, deployments, request_body, response_body, attempt_log, wire."""
        ...

    def shadow_pairs(
        self, model: str | None = None, limit: int = 1000
    ) -> list[tuple[Request, Request]]:
        """(primary, shadow), newest shadow first; a shadow whose primary is not recorded (yet)
        is left out."""
        ...

    def shadow_totals(self, model: str | None = None) -> list[ShadowTotal]: ...

    def shadow_spent(self, model: str, candidate: str) -> float: ...

    def canary_stage(self, model: str, candidate: str, stage: int, since: float) -> list[Request]:
        """The requests a running canary placed in `stage` from `since` on, oldest first:
        id, outcome, attempt_log, latency_ms, cost_usd, migration."""
        ...

    def migration_events(self, model: str | None = None, limit: int = 50) -> list[MigrationEvent]:
        """The latest `limit`, newest last."""
        ...

    # -- intent --------------------------------------------------------------------------------

    def conversations(self, *, since: float | None = None, bodies: bool = False) -> list[Request]:
        """Chat requests recorded with a conversation hash, oldest first: id, started, model,
        outcome, deployments, attempt_log, key_id, migration, attrs; with `bodies`, the bodies."""
        ...

    def answer(self, prefix: str, before: float | None = None) -> Request | None:
        """The latest request whose conversation hashed to `prefix` (started before `before`):
        the same columns as `conversations`, without bodies."""
        ...

    def feedback(self, *, since: float | None = None) -> list[Feedback]:
        """Feedback sent through `POST /v1/feedback`, oldest first."""
        ...


def open_reader(url: str | Path) -> RecordReader:
    """A reader of the store at `url`; NoRecordStore if there is none."""
    if is_postgres(url):
        return postgres_module("pg_read").PostgresReader(str(url))
    from turnout.store.sqlite_read import SQLiteReader

    return SQLiteReader(sqlite_file(url))
