"""The fleet's terms of leadership as the record knows them: a fence for the leader's decisions.

The leader's lease lives in Redis, and a leader that stalls past it (a long pause, a slow store)
may still be about to record a decision when its successor has begun deciding. So a new leader
registers its term (the lease's epoch) in the record before it decides anything, and each
decision it records names its term: the record refuses, in the same statement that would write
it, a decision from a term older than the newest registered — a fencing token checked where the
write lands. A lone gateway names no term and is never refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from turnout.store.location import is_postgres, postgres_module, sqlite_file

# The condition a fenced insert's SELECT carries; its one parameter is the writer's term.
FENCE = "NOT EXISTS (SELECT 1 FROM fleet_term WHERE name = 'leader' AND epoch > {mark})"
LEADER = "leader"


class TermLog(Protocol):
    def register(self, epoch: int, replica: str) -> int:
        """Record `epoch` as the newest term unless a newer one is known; the newest after."""
        ...

    def close(self) -> None: ...


def open_term_log(url: str | Path) -> TermLog:
    if is_postgres(url):
        return postgres_module("pg_terms").PostgresTermLog(str(url))
    from turnout.store.sqlite_terms import SQLiteTermLog

    return SQLiteTermLog(sqlite_file(url))
