"""Migration events in the record: canary stages and their evidence, shadow stops.

Rare (a few per migration) and read back at start-up, so the gateway's state survives a restart.
"""

from __future__ import annotations

import time
from typing import Any

from turnout.store.events import MigrationEvent, MigrationEventLog, open_event_log
from turnout.store.read import open_reader

__all__ = ["EventLog", "MigrationEvent", "read_events"]


class EventLog:
    """The gateway's log of migration events; appends before `open()` or after `close()` are
    not kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._log: MigrationEventLog | None = None

    def open(self) -> None:
        self._log = open_event_log(self.url)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def append(
        self,
        model: str,
        mode: str,
        candidate: str,
        kind: str,
        *,
        stage: int | None = None,
        percent: float | None = None,
        detail: dict[str, Any] | None = None,
        decision: str | None = None,
        term: int | None = None,
    ) -> bool:
        """Whether the record took it: not when it already holds `decision` (a decision's
        identity, so writing one twice keeps one), nor when a term newer than `term` leads."""
        event = MigrationEvent(
            time.time(), model, mode, candidate, kind, stage, percent, detail or {}
        )
        if self._log is None:
            return False
        return self._log.append(event, decision, term)

    def latest(self, model: str, mode: str, candidate: str) -> MigrationEvent | None:
        assert self._log is not None
        return self._log.latest(model, mode, candidate)

    def shadow_spent(self, model: str, candidate: str) -> float:
        """What the shadows of `model` on `candidate` have cost, by the record."""
        with open_reader(self.url) as reader:
            return reader.shadow_spent(model, candidate)


def read_events(url: str, model: str | None = None, limit: int = 50) -> list[MigrationEvent]:
    """For the CLI: newest last. Empty when the store has no migration events."""
    with open_reader(url) as reader:
        return reader.migration_events(model, limit)
