"""Fingerprint history: probe runs with every sample, named baselines, checks and alarms.

Kept in the record's store by default (one file to back up), in tables nothing else writes.
Runs and samples travel as dicts keyed by the fields of `ProbeRun` and `Sample`, so the store
needs nothing from the fingerprint package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from turnout.store.location import is_postgres, postgres_module, sqlite_file


@dataclass(slots=True)
class CheckRecord:
    id: str
    at: float
    deployment: str
    baseline: str
    run_id: str
    changed: bool
    min_p: float
    verdict: dict[str, Any]


@dataclass(slots=True)
class AlarmRecord:
    id: str
    at: float
    deployment: str
    kind: str  # raised | cleared | passive
    message: str
    detail: dict[str, Any]


class FingerprintTables(Protocol):
    """Synchronous and thread-safe; call it through asyncio.to_thread on an event loop."""

    def close(self) -> None: ...

    def save_run(self, run: dict[str, Any], samples: list[dict[str, Any]]) -> None:
        """A run replaces any earlier one of its id, samples included."""
        ...

    def load_run(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None: ...

    def runs(self, deployment: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first: id, deployment, suite, started, samples (a count), cost_usd, note."""
        ...

    def latest_run(self, deployment: str) -> str | None: ...

    def set_baseline(self, name: str, run_id: str, deployment: str, created: float) -> None: ...

    def baseline_run_id(self, name: str) -> str | None: ...

    def baselines(self) -> list[dict[str, Any]]:
        """By name: name, run_id, deployment, created."""
        ...

    def save_check(self, check: CheckRecord) -> None: ...

    def checks(self, deployment: str | None = None, limit: int = 1000) -> list[CheckRecord]:
        """Oldest first, the last `limit` of them."""
        ...

    def save_alarm(self, alarm: AlarmRecord, term: int | None = None) -> bool:
        """False when a term newer than `term` leads the fleet (`turnout.store.terms`)."""
        ...

    def alarms(self, deployment: str | None = None, limit: int = 1000) -> list[AlarmRecord]:
        """Oldest first, the last `limit` of them."""
        ...

    def deployments(self) -> list[str]:
        """Every deployment with a probe run, by name."""
        ...


def open_fingerprints(url: str | Path) -> FingerprintTables:
    """The fingerprint tables at `url` (a store URL or a path), created if absent."""
    if is_postgres(url):
        return postgres_module("pg_fingerprints").PostgresFingerprints(str(url))
    from turnout.store.sqlite_fingerprints import SQLiteFingerprints

    return SQLiteFingerprints(sqlite_file(url))
