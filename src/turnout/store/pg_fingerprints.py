"""`FingerprintTables` in PostgreSQL."""

from __future__ import annotations

from typing import Any

import orjson

from turnout.store import pg_pool
from turnout.store.fingerprints import AlarmRecord, CheckRecord
from turnout.store.terms import FENCE

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


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)


class PostgresFingerprints:
    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = pg_pool.acquire(url)

    def close(self) -> None:
        if self._pool is not None:
            self._pool = None
            pg_pool.release(self.url)

    def _all(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        with pg_pool.connection(self._pool, self.url) as conn:
            return conn.execute(sql, args).fetchall()  # type: ignore[arg-type]

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with pg_pool.connection(self._pool, self.url) as conn:
            conn.execute(sql, args)  # type: ignore[arg-type]

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
            (run["id"], seq, *(_dumps(s[k]) if k == "logprobs" else s[k] for k in _SAMPLE_FIELDS))
            for seq, s in enumerate(samples)
        ]
        columns = "id, deployment, suite, suite_digest, started, ended, sampling, cost_usd, "
        columns += "samples, note, suite_spec"
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns.split(", ")[1:])
        with pg_pool.connection(self._pool, self.url) as conn, conn.transaction():
            conn.execute(
                f"INSERT INTO fingerprint_runs ({columns}) VALUES ({_marks(11)}) "  # type: ignore[arg-type]
                f"ON CONFLICT (id) DO UPDATE SET {updates}",
                head,
            )
            conn.execute("DELETE FROM fingerprint_samples WHERE run_id = %s", (run["id"],))
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO fingerprint_samples (run_id, seq, {_SAMPLE_COLUMNS}) "  # type: ignore[arg-type]
                    f"VALUES ({_marks(14)})",
                    rows,
                )

    def load_run(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        with pg_pool.connection(self._pool, self.url) as conn:
            head = conn.execute(
                f"SELECT {', '.join(_RUN_FIELDS)} FROM fingerprint_runs WHERE id = %s",  # type: ignore[arg-type]
                (run_id,),
            ).fetchone()
            if head is None:
                return None
            rows = conn.execute(
                f"SELECT {_SAMPLE_COLUMNS} FROM fingerprint_samples "  # type: ignore[arg-type]
                "WHERE run_id = %s ORDER BY seq",
                (run_id,),
            ).fetchall()
        run = dict(zip(_RUN_FIELDS, head, strict=True))
        return run, [dict(zip(_SAMPLE_FIELDS, r, strict=True)) for r in rows]

    def runs(self, deployment: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        keys = ("id", "deployment", "suite", "started", "samples", "cost_usd", "note")
        sql = f"SELECT {', '.join(keys)} FROM fingerprint_runs"
        args: list[Any] = []
        if deployment:
            sql += " WHERE deployment = %s"
            args.append(deployment)
        sql += " ORDER BY started DESC LIMIT %s"
        args.append(limit)
        return [dict(zip(keys, r, strict=True)) for r in self._all(sql, args)]

    def latest_run(self, deployment: str) -> str | None:
        rows = self._all(
            "SELECT id FROM fingerprint_runs WHERE deployment = %s ORDER BY started DESC LIMIT 1",
            (deployment,),
        )
        return str(rows[0][0]) if rows else None

    # -- baselines ---------------------------------------------------------------------------

    def set_baseline(self, name: str, run_id: str, deployment: str, created: float) -> None:
        self._write(
            "INSERT INTO fingerprint_baselines (name, run_id, deployment, created) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id, "
            "deployment = excluded.deployment, created = excluded.created",
            (name, run_id, deployment, created),
        )

    def baseline_run_id(self, name: str) -> str | None:
        rows = self._all("SELECT run_id FROM fingerprint_baselines WHERE name = %s", (name,))
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
            f"INSERT INTO fingerprint_checks ({_CHECK_COLUMNS}) VALUES ({_marks(8)}) "
            "ON CONFLICT (id) DO UPDATE SET at = excluded.at, deployment = excluded.deployment, "
            "baseline = excluded.baseline, run_id = excluded.run_id, "
            "changed = excluded.changed, min_p = excluded.min_p, verdict = excluded.verdict",
            (check.id, check.at, check.deployment, check.baseline, check.run_id,
             bool(check.changed), check.min_p, _dumps(check.verdict)),
        )  # fmt: skip

    def checks(self, deployment: str | None = None, limit: int = 1000) -> list[CheckRecord]:
        sql, args = _latest(f"SELECT {_CHECK_COLUMNS} FROM fingerprint_checks", deployment, limit)
        return [
            CheckRecord(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7])
            for r in reversed(self._all(sql, args))
        ]

    def save_alarm(self, alarm: AlarmRecord, term: int | None = None) -> bool:
        args: tuple[Any, ...] = (
            *(alarm.id, alarm.at, alarm.deployment, alarm.kind, alarm.message),
            _dumps(alarm.detail),
        )
        values = f"VALUES ({_marks(6)})"
        if term is not None:  # a SELECT's parameters carry no column types: cast them
            values = (
                "SELECT %s::text, %s::double precision, %s::text, %s::text, %s::text, %s::json "
                "WHERE " + FENCE.format(mark="%s")
            )
            args += (term,)
        sql = (
            f"INSERT INTO fingerprint_alarms ({_ALARM_COLUMNS}) {values} "
            "ON CONFLICT (id) DO UPDATE SET at = excluded.at, deployment = excluded.deployment, "
            "kind = excluded.kind, message = excluded.message, detail = excluded.detail"
        )
        with pg_pool.connection(self._pool, self.url) as conn:
            return conn.execute(sql, args).rowcount == 1  # type: ignore[arg-type]

    def alarms(self, deployment: str | None = None, limit: int = 1000) -> list[AlarmRecord]:
        sql, args = _latest(f"SELECT {_ALARM_COLUMNS} FROM fingerprint_alarms", deployment, limit)
        return [
            AlarmRecord(r[0], r[1], r[2], r[3], r[4], r[5]) for r in reversed(self._all(sql, args))
        ]

    def deployments(self) -> list[str]:
        rows = self._all("SELECT DISTINCT deployment FROM fingerprint_runs ORDER BY deployment")
        return [str(r[0]) for r in rows]


def _latest(select: str, deployment: str | None, limit: int) -> tuple[str, list[Any]]:
    args: list[Any] = []
    if deployment:
        select += " WHERE deployment = %s"
        args.append(deployment)
    args.append(limit)
    return select + " ORDER BY at DESC LIMIT %s", args
