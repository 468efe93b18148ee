"""`FingerprintTables` in SQLite. Writes are few and off the request path, so a plain connection
with WAL and a busy timeout shares the file with the record writer."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson

from turnout.store.errors import StoreError
from turnout.store.fingerprints import AlarmRecord, CheckRecord
from turnout.store.sqlite_errors import translated
from turnout.store.sqlite_schema import migrated
from turnout.store.terms import FENCE

SCHEMA = """
CREATE TABLE IF NOT EXISTS fingerprint_runs (
    id TEXT PRIMARY KEY,
    deployment TEXT NOT NULL,
    suite TEXT NOT NULL,
    suite_digest TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    sampling TEXT NOT NULL,
    cost_usd REAL NOT NULL,
    samples INTEGER NOT NULL,
    note TEXT NOT NULL,
    suite_spec TEXT
);
CREATE INDEX IF NOT EXISTS fingerprint_runs_deployment ON fingerprint_runs (deployment, started);
CREATE TABLE IF NOT EXISTS fingerprint_samples (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    probe TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_s REAL,
    model TEXT,
    system_fingerprint TEXT,
    logprobs TEXT,
    token_logprob REAL,
    error TEXT,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS fingerprint_baselines (
    name TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    deployment TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS fingerprint_checks (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    deployment TEXT NOT NULL,
    baseline TEXT NOT NULL,
    run_id TEXT NOT NULL,
    changed INTEGER NOT NULL,
    min_p REAL NOT NULL,
    verdict TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fingerprint_checks_deployment ON fingerprint_checks (deployment, at);
CREATE TABLE IF NOT EXISTS fingerprint_alarms (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    deployment TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fingerprint_alarms_deployment ON fingerprint_alarms (deployment, at);
"""

_SAMPLE_FIELDS = (
    *("probe", "kind", "text", "finish_reason", "prompt_tokens", "completion_tokens"),
    *("latency_s", "model", "system_fingerprint", "logprobs", "token_logprob", "error"),
)
_SAMPLE_COLUMNS = ", ".join(_SAMPLE_FIELDS)
_RUN_FIELDS = (
    *("id", "deployment", "suite", "suite_digest", "started", "ended", "sampling", "cost_usd"),
    *("note", "suite_spec"),
)
_CHECK_COLUMNS = "id, at, deployment, baseline, run_id, changed, min_p, verdict"
_ALARM_COLUMNS = "id, at, deployment, kind, message, detail"


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


class SQLiteFingerprints:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            migrated(self._conn, str(path))
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"fingerprint store {path}: cannot be opened: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _all(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        with self._lock, translated(self.path):
            return self._conn.execute(sql, args).fetchall()

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock, translated(self.path):
            self._conn.execute(sql, args)

    # -- runs --------------------------------------------------------------------------------

    def save_run(self, run: dict[str, Any], samples: list[dict[str, Any]]) -> None:
        head = (
            *(run[k] for k in ("id", "deployment", "suite", "suite_digest", "started", "ended")),
            _dumps(run["sampling"]),
            run["cost_usd"],
            len(samples),
            run["note"],
            _dumps(run["suite_spec"]),
        )
        rows = [
            (
                run["id"],
                seq,
                *(_dumps(s[k]) if k == "logprobs" else s[k] for k in _SAMPLE_FIELDS),
            )
            for seq, s in enumerate(samples)
        ]
        with self._lock, translated(self.path), self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute(
                "INSERT OR REPLACE INTO fingerprint_runs (id, deployment, suite, suite_digest, "
                "started, ended, sampling, cost_usd, samples, note, suite_spec) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                head,
            )
            self._conn.execute("DELETE FROM fingerprint_samples WHERE run_id = ?", (run["id"],))
            self._conn.executemany(
                f"INSERT INTO fingerprint_samples (run_id, seq, {_SAMPLE_COLUMNS}) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )

    def load_run(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        with self._lock, translated(self.path):
            head = self._conn.execute(
                f"SELECT {', '.join(_RUN_FIELDS)} FROM fingerprint_runs WHERE id = ?", (run_id,)
            ).fetchone()
            if head is None:
                return None
            rows = self._conn.execute(
                f"SELECT {_SAMPLE_COLUMNS} FROM fingerprint_samples WHERE run_id = ? ORDER BY seq",
                (run_id,),
            ).fetchall()
        run = dict(zip(_RUN_FIELDS, head, strict=True))
        run["sampling"] = _loads(run["sampling"])
        run["suite_spec"] = _loads(run["suite_spec"])
        samples = [dict(zip(_SAMPLE_FIELDS, r, strict=True)) for r in rows]
        for s in samples:
            s["logprobs"] = _loads(s["logprobs"])
        return run, samples

    def runs(self, deployment: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        keys = ("id", "deployment", "suite", "started", "samples", "cost_usd", "note")
        sql = f"SELECT {', '.join(keys)} FROM fingerprint_runs"
        args: list[Any] = []
        if deployment:
            sql += " WHERE deployment = ?"
            args.append(deployment)
        sql += " ORDER BY started DESC LIMIT ?"
        args.append(limit)
        return [dict(zip(keys, r, strict=True)) for r in self._all(sql, args)]

    def latest_run(self, deployment: str) -> str | None:
        rows = self._all(
            "SELECT id FROM fingerprint_runs WHERE deployment = ? ORDER BY started DESC LIMIT 1",
            (deployment,),
        )
        return str(rows[0][0]) if rows else None

    # -- baselines ---------------------------------------------------------------------------

    def set_baseline(self, name: str, run_id: str, deployment: str, created: float) -> None:
        self._write(
            "INSERT OR REPLACE INTO fingerprint_baselines (name, run_id, deployment, created) "
            "VALUES (?,?,?,?)",
            (name, run_id, deployment, created),
        )

    def baseline_run_id(self, name: str) -> str | None:
        rows = self._all("SELECT run_id FROM fingerprint_baselines WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    def baselines(self) -> list[dict[str, Any]]:
        keys = ("name", "run_id", "deployment", "created")
        rows = self._all(
            "SELECT name, run_id, deployment, created FROM fingerprint_baselines ORDER BY name"
        )
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # -- checks and alarms -------------------------------------------------------------------

    def save_check(self, check: CheckRecord) -> None:
        self._write(
            f"INSERT OR REPLACE INTO fingerprint_checks ({_CHECK_COLUMNS}) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (
                check.id,
                check.at,
                check.deployment,
                check.baseline,
                check.run_id,
                int(check.changed),
                check.min_p,
                _dumps(check.verdict),
            ),
        )

    def checks(self, deployment: str | None = None, limit: int = 1000) -> list[CheckRecord]:
        sql, args = _latest(f"SELECT {_CHECK_COLUMNS} FROM fingerprint_checks", deployment, limit)
        return [
            CheckRecord(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], orjson.loads(r[7]))
            for r in reversed(self._all(sql, args))
        ]

    def save_alarm(self, alarm: AlarmRecord, term: int | None = None) -> bool:
        args: tuple[Any, ...] = (
            *(alarm.id, alarm.at, alarm.deployment, alarm.kind, alarm.message),
            _dumps(alarm.detail),
        )
        values = "VALUES (?,?,?,?,?,?)"
        if term is not None:
            values = "SELECT ?,?,?,?,?,? WHERE " + FENCE.format(mark="?")
            args += (term,)
        with self._lock, translated(self.path):
            cursor = self._conn.execute(
                f"INSERT OR REPLACE INTO fingerprint_alarms ({_ALARM_COLUMNS}) {values}", args
            )
        return cursor.rowcount == 1

    def alarms(self, deployment: str | None = None, limit: int = 1000) -> list[AlarmRecord]:
        sql, args = _latest(f"SELECT {_ALARM_COLUMNS} FROM fingerprint_alarms", deployment, limit)
        return [
            AlarmRecord(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5]))
            for r in reversed(self._all(sql, args))
        ]

    def deployments(self) -> list[str]:
        rows = self._all("SELECT DISTINCT deployment FROM fingerprint_runs ORDER BY deployment")
        return [str(r[0]) for r in rows]


def _latest(select: str, deployment: str | None, limit: int) -> tuple[str, list[Any]]:
    """The newest `limit` rows of a select (one deployment's, if named)."""
    args: list[Any] = []
    if deployment:
        select += " WHERE deployment = ?"
        args.append(deployment)
    args.append(limit)
    return select + " ORDER BY at DESC LIMIT ?", args
