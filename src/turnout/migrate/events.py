"""Migration events in the record's SQLite file: canary stages and their evidence, shadow stops.

Rare (a few per migration) and read back at start-up, so the gateway's state survives a restart.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from turnout.store.sqlite import sqlite_path

SCHEMA = """
CREATE TABLE IF NOT EXISTS migration_events (
    at REAL NOT NULL,
    model TEXT NOT NULL,
    mode TEXT NOT NULL,
    candidate TEXT NOT NULL,
    kind TEXT NOT NULL,
    stage INTEGER,
    percent REAL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS migration_events_model ON migration_events (model, mode, at);
"""


@dataclass(frozen=True, slots=True)
class MigrationEvent:
    at: float
    model: str
    mode: str  # shadow | canary
    candidate: str
    kind: str  # canary: started, promoted, rolled_back, completed; shadow: budget_spent
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


class EventLog:
    def __init__(self, url: str) -> None:
        self.path: Path = sqlite_path(url)
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(SCHEMA)
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

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
    ) -> MigrationEvent:
        event = MigrationEvent(
            time.time(), model, mode, candidate, kind, stage, percent, detail or {}
        )
        if self._conn is not None:
            self._conn.execute(
                "INSERT INTO migration_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.at,
                    model,
                    mode,
                    candidate,
                    kind,
                    stage,
                    percent,
                    orjson.dumps(event.detail, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
                ),
            )
        return event

    def latest(self, model: str, mode: str, candidate: str) -> MigrationEvent | None:
        assert self._conn is not None
        row = self._conn.execute(
            "SELECT * FROM migration_events WHERE model = ? AND mode = ? AND candidate = ? "
            "ORDER BY at DESC, rowid DESC LIMIT 1",
            (model, mode, candidate),
        ).fetchone()
        return None if row is None else _event(row)

    def shadow_spent(self, model: str, candidate: str) -> float:
        """What the shadows of `model` on `candidate` have cost, by the record."""
        assert self._conn is not None
        try:
            row = self._conn.execute(
                "SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE model = ? "
                "AND json_extract(migration, '$.shadow_of') IS NOT NULL "
                "AND json_extract(migration, '$.candidate') = ?",
                (model, candidate),
            ).fetchone()
        except sqlite3.OperationalError:  # no requests table yet
            return 0.0
        return float(row[0])


def _event(row: tuple[Any, ...]) -> MigrationEvent:
    at, model, mode, candidate, kind, stage, percent, detail = row
    return MigrationEvent(
        at, model, mode, candidate, kind, stage, percent, orjson.loads(detail) if detail else {}
    )


def read_events(url: str, model: str | None = None, limit: int = 50) -> list[MigrationEvent]:
    """For the CLI: newest last. Empty when the store has no migration events."""
    path = sqlite_path(url)
    if not path.exists():
        raise FileNotFoundError(f"no record store at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        sql = "SELECT * FROM migration_events"
        args: list[Any] = []
        if model:
            sql += " WHERE model = ?"
            args.append(model)
        sql += " ORDER BY at DESC, rowid DESC LIMIT ?"
        args.append(limit)
        rows = conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        conn.close()
    return [_event(r) for r in reversed(rows)]
