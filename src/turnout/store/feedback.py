"""Explicit feedback on answers (`POST /v1/feedback`): written by the gateway, read by reports
(through `RecordReader.feedback`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from turnout.store.location import is_postgres, postgres_module, sqlite_file


@dataclass(frozen=True, slots=True)
class Feedback:
    id: str
    at: float
    request_id: str | None
    conversation_id: str | None
    score: float | None  # −1 … 1
    label: str | None
    comment: str | None
    key_id: str | None  # the client key that sent it (never the secret)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


class FeedbackLog(Protocol):
    """The feedback table, open for writing (it is created if absent)."""

    def append(self, item: Feedback) -> None: ...

    def close(self) -> None: ...


def open_feedback_log(url: str | Path) -> FeedbackLog:
    if is_postgres(url):
        return postgres_module("pg_feedback").PostgresFeedbackLog(str(url))
    from turnout.store.sqlite_feedback import SQLiteFeedbackLog

    return SQLiteFeedbackLog(sqlite_file(url))
