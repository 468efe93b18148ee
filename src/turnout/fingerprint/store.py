"""Fingerprint tables: probe runs with every sample, named baselines, checks and alarms.

They live in the record's SQLite file by default (one file to back up), in tables of their own
that nothing else writes; `--store` puts them in another file. Writes are few and off the request
path, so a plain connection with WAL and a busy timeout shares the file with the record writer.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from turnout.errors import TurnoutError
from turnout.fingerprint.samples import ProbeRun, Sample

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

_SAMPLE_COLUMNS = (
    "probe, kind, text, finish_reason, prompt_tokens, completion_tokens, latency_s, model, "
    "system_fingerprint, logprobs, token_logprob, error"
)


class NoSuchBaseline(TurnoutError, LookupError):
    pass


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


def store_path(url_or_path: str | Path) -> Path:
    return Path(str(url_or_path).removeprefix("sqlite:///"))


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class FingerprintStore:
    """Synchronous and thread-safe; call it through asyncio.to_thread on an event loop."""

    def __init__(self, url_or_path: str | Path) -> None:
        self.path = store_path(url_or_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(SCHEMA)
        self._migrate()
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        """Columns added since a store was created (CREATE TABLE IF NOT EXISTS adds none)."""
        have = {r[1] for r in self._conn.execute("PRAGMA table_info(fingerprint_samples)")}
        if "token_logprob" not in have:
            self._conn.execute("ALTER TABLE fingerprint_samples ADD COLUMN token_logprob REAL")
        have = {r[1] for r in self._conn.execute("PRAGMA table_info(fingerprint_runs)")}
        if "suite_spec" not in have:
            self._conn.execute("ALTER TABLE fingerprint_runs ADD COLUMN suite_spec TEXT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> FingerprintStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs --------------------------------------------------------------------------------

    def save_run(self, run: ProbeRun) -> None:
        rows = [
            (
                run.id,
                seq,
                s.probe,
                s.kind,
                s.text,
                s.finish_reason,
                s.prompt_tokens,
                s.completion_tokens,
                s.latency_s,
                s.model,
                s.system_fingerprint,
                None if s.logprobs is None else _dumps(s.logprobs),
                s.token_logprob,
                s.error,
            )
            for seq, s in enumerate(run.samples)
        ]
        with self._lock, self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute(
                "INSERT OR REPLACE INTO fingerprint_runs (id, deployment, suite, suite_digest, "
                "started, ended, sampling, cost_usd, samples, note, suite_spec) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run.id,
                    run.deployment,
                    run.suite,
                    run.suite_digest,
                    run.started,
                    run.ended,
                    _dumps(run.sampling),
                    run.cost_usd,
                    len(run.samples),
                    run.note,
                    None if run.suite_spec is None else _dumps(run.suite_spec),
                ),
            )
            self._conn.execute("DELETE FROM fingerprint_samples WHERE run_id = ?", (run.id,))
            self._conn.executemany(
                f"INSERT INTO fingerprint_samples (run_id, seq, {_SAMPLE_COLUMNS}) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )

    def load_run(self, run_id: str) -> ProbeRun:
        with self._lock:
            head = self._conn.execute(
                "SELECT id, deployment, suite, suite_digest, started, ended, sampling, cost_usd, "
                "note, suite_spec FROM fingerprint_runs WHERE id = ?",
                (run_id,),
            ).fetchone()
            if head is None:
                raise LookupError(f"no probe run {run_id!r}")
            rows = self._conn.execute(
                f"SELECT {_SAMPLE_COLUMNS} FROM fingerprint_samples WHERE run_id = ? ORDER BY seq",
                (run_id,),
            ).fetchall()
        samples = [
            Sample(
                probe=r[0],
                kind=r[1],
                text=r[2],
                finish_reason=r[3],
                prompt_tokens=r[4],
                completion_tokens=r[5],
                latency_s=r[6],
                model=r[7],
                system_fingerprint=r[8],
                logprobs=None if r[9] is None else orjson.loads(r[9]),
                token_logprob=r[10],
                error=r[11],
            )
            for r in rows
        ]
        return ProbeRun(
            id=head[0],
            deployment=head[1],
            suite=head[2],
            suite_digest=head[3],
            started=head[4],
            ended=head[5],
            sampling=orjson.loads(head[6]),
            cost_usd=head[7],
            note=head[8],
            suite_spec=None if head[9] is None else orjson.loads(head[9]),
            samples=samples,
        )

    def runs(self, deployment: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = "SELECT id, deployment, suite, started, samples, cost_usd, note FROM fingerprint_runs"
        args: list[Any] = []
        if deployment:
            sql += " WHERE deployment = ?"
            args.append(deployment)
        sql += " ORDER BY started DESC LIMIT ?"
        args.append(limit)
        keys = ("id", "deployment", "suite", "started", "samples", "cost_usd", "note")
        with self._lock:
            return [dict(zip(keys, r, strict=True)) for r in self._conn.execute(sql, args)]

    def latest_run(self, deployment: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id FROM fingerprint_runs WHERE deployment = ? ORDER BY started DESC",
                (deployment,),
            ).fetchone()
        return None if row is None else str(row[0])

    # -- baselines ---------------------------------------------------------------------------

    def set_baseline(self, name: str, run_id: str, deployment: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO fingerprint_baselines VALUES (?,?,?,?)",
                (name, run_id, deployment, time.time()),
            )

    def baseline_run_id(self, name: str) -> str:
        with self._lock:
            row = self._conn.execute(
                "SELECT run_id FROM fingerprint_baselines WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            known = ", ".join(b["name"] for b in self.baselines()) or "none stored"
            raise NoSuchBaseline(f"no baseline named {name!r} (known: {known})")
        return str(row[0])

    def baseline(self, name: str) -> ProbeRun:
        return self.load_run(self.baseline_run_id(name))

    def baselines(self) -> list[dict[str, Any]]:
        keys = ("name", "run_id", "deployment", "created")
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, run_id, deployment, created FROM fingerprint_baselines ORDER BY name"
            ).fetchall()
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # -- checks and alarms -------------------------------------------------------------------

    def save_check(self, check: CheckRecord) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO fingerprint_checks VALUES (?,?,?,?,?,?,?,?)",
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
        """Oldest first, the last `limit` of them."""
        rows = self._latest("fingerprint_checks", deployment, limit)
        return [
            CheckRecord(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], orjson.loads(r[7]))
            for r in rows
        ]

    def save_alarm(self, alarm: AlarmRecord) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO fingerprint_alarms VALUES (?,?,?,?,?,?)",
                (
                    alarm.id,
                    alarm.at,
                    alarm.deployment,
                    alarm.kind,
                    alarm.message,
                    _dumps(alarm.detail),
                ),
            )

    def alarms(self, deployment: str | None = None, limit: int = 1000) -> list[AlarmRecord]:
        rows = self._latest("fingerprint_alarms", deployment, limit)
        return [AlarmRecord(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5])) for r in rows]

    def _latest(self, table: str, deployment: str | None, limit: int) -> list[Any]:
        """The last `limit` rows of a table (one deployment's, if named), oldest first."""
        sql = f"SELECT * FROM {table}"
        args: list[Any] = []
        if deployment:
            sql += " WHERE deployment = ?"
            args.append(deployment)
        sql += " ORDER BY at DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return list(reversed(rows))

    def deployments(self) -> list[str]:
        with self._lock:
            rows: Iterable[Any] = self._conn.execute(
                "SELECT DISTINCT deployment FROM fingerprint_runs ORDER BY deployment"
            ).fetchall()
        return [str(r[0]) for r in rows]
