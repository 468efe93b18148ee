"""Migration events: canary stages with their evidence, shadow stops. Written by the gateway,
read back at its start and by `turnout migrate status` (through `RecordReader`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from turnout.store.location import is_postgres, postgres_module, sqlite_file


@dataclass(frozen=True, slots=True)
class MigrationEvent:
    at: float
    model: str
    mode: str  # shadow | canary | replay
    candidate: str
    # canary: started, promoted, rolled_back, completed, reset; shadow: budget_spent;
    # replay: report (an HTML report written by `turnout migrate replay --html`)
    kind: str
    stage: int | None
    percent: float | None
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "model": self.model,
            "mode": self.mode,
            "candidate": self.candidate,
            "kind": self.kind,
            "stage": self.stage,
            "percent": self.percent,
            "detail": self.detail,
        }


class MigrationEventLog(Protocol):
    """The events table, open for writing (it is created if absent)."""

    def append(
        self, event: MigrationEvent, decision: str | None = None, term: int | None = None
    ) -> bool:
        """Write `event`; False when the record already holds its `decision` (an identity:
        the same decision written twice is kept once) or a term newer than `term` is known."""
        ...

    def latest(self, model: str, mode: str, candidate: str) -> MigrationEvent | None: ...

    def close(self) -> None: ...


def open_event_log(url: str | Path) -> MigrationEventLog:
    if is_postgres(url):
        return postgres_module("pg_events").PostgresEventLog(str(url))
    from turnout.store.sqlite_events import SQLiteEventLog

    return SQLiteEventLog(sqlite_file(url))
