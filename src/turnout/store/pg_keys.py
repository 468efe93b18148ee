"""Client keys, their spend and events in PostgreSQL. A key's revision comes from a sequence,
so replicas adding keys at once never share one."""

from __future__ import annotations

from typing import Any

import orjson

from turnout.store import pg_pool
from turnout.store.errors import RecordNotFound, StoreError
from turnout.store.keys import KeyEvent, KeyRecord, SpendDelta
from turnout.store.location import describe

COLUMNS = (
    "id, name, secret_sha256, display, created, models, rpm, tpm, budget_usd, budget_period_s, "
    "alert_at, expires, tenant, priority, metadata, revoked, revision"
)
_NEXT = "nextval('client_keys_revision')"


class PostgresKeyStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = pg_pool.acquire(url)

    def _conn(self) -> Any:
        if self._pool is None:
            raise StoreError(f"record store {describe(self.url)}: the key store is closed")
        return pg_pool.connection(self._pool, self.url)

    def add(self, key: KeyRecord) -> KeyRecord:
        row = _row_of(key)[:-1]
        marks = ", ".join(["%s"] * len(row))
        with self._conn() as conn:
            conn.execute(f"INSERT INTO client_keys ({COLUMNS}) VALUES ({marks}, {_NEXT})", row)
        return self.get(key.id)

    def get(self, key_id: str) -> KeyRecord:
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM client_keys WHERE id = %s", (key_id,)
            ).fetchone()
        if row is None:
            raise RecordNotFound(f"no client key with id {key_id!r}")
        return _key_of(row)

    def all(self) -> list[KeyRecord]:
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM client_keys ORDER BY created, id"
            ).fetchall()
        return [_key_of(r) for r in rows]

    def changed_since(self, revision: int) -> list[KeyRecord]:
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM client_keys WHERE revision > %s ORDER BY revision",
                (revision,),
            ).fetchall()
        return [_key_of(r) for r in rows]

    def revoke(self, key_id: str, at: float) -> KeyRecord:
        self._update(key_id, f"revoked = COALESCE(revoked, %s), revision = {_NEXT}", (at,))
        return self.get(key_id)

    def rotate(self, key_id: str, secret_sha256: str, display: str) -> KeyRecord:
        self._update(
            key_id,
            f"secret_sha256 = %s, display = %s, revision = {_NEXT}",
            (secret_sha256, display),
        )
        return self.get(key_id)

    def add_spend(self, deltas: list[SpendDelta]) -> None:
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO client_key_spend (key_id, period_start, usd, tokens, requests) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key_id, period_start) DO UPDATE SET "
                "usd = client_key_spend.usd + excluded.usd, "
                "tokens = client_key_spend.tokens + excluded.tokens, "
                "requests = client_key_spend.requests + excluded.requests",
                [(d.key_id, d.period_start, d.usd, d.tokens, d.requests) for d in deltas],
            )

    def spend(self, key_id: str, period_start: float) -> SpendDelta:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT usd, tokens, requests FROM client_key_spend "
                "WHERE key_id = %s AND period_start = %s",
                (key_id, period_start),
            ).fetchone()
        usd, tokens, requests = row if row is not None else (0.0, 0, 0)
        return SpendDelta(key_id, period_start, usd, tokens, requests)

    def append_events(self, events: list[KeyEvent]) -> None:
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO client_key_events (at, key_id, kind, detail) VALUES (%s, %s, %s, %s)",
                [(e.at, e.key_id, e.kind, orjson.dumps(e.detail).decode()) for e in events],
            )

    def events(self, key_id: str, since: float = 0.0) -> list[KeyEvent]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT at, key_id, kind, detail FROM client_key_events "
                "WHERE key_id = %s AND at >= %s ORDER BY at, seq",
                (key_id, since),
            ).fetchall()
        return [KeyEvent(at, k, kind, detail or {}) for at, k, kind, detail in rows]

    def close(self) -> None:
        if self._pool is not None:
            self._pool = None
            pg_pool.release(self.url)

    def _update(self, key_id: str, assignments: str, args: tuple[Any, ...]) -> None:
        with self._conn() as conn:
            done = conn.execute(
                f"UPDATE client_keys SET {assignments} WHERE id = %s", (*args, key_id)
            )
        if done.rowcount == 0:
            raise RecordNotFound(f"no client key with id {key_id!r}")


def _row_of(key: KeyRecord) -> tuple[Any, ...]:
    return (
        key.id, key.name, key.secret_sha256, key.display, key.created,
        orjson.dumps(list(key.models)).decode(), key.rpm, key.tpm, key.budget_usd,
        key.budget_period_s, key.alert_at, key.expires, key.tenant, key.priority,
        orjson.dumps(key.metadata).decode(), key.revoked, key.revision,
    )  # fmt: skip


def _key_of(row: tuple[Any, ...]) -> KeyRecord:
    (id_, name, sha, display, created, models, rpm, tpm, budget, period, alert, expires,
     tenant, priority, metadata, revoked, revision) = row  # fmt: skip
    return KeyRecord(
        id=id_, name=name, secret_sha256=sha, display=display, created=created,
        models=tuple(models), rpm=rpm, tpm=tpm, budget_usd=budget, budget_period_s=period,
        alert_at=alert, expires=expires, tenant=tenant, priority=priority,
        metadata=dict(metadata), revoked=revoked, revision=revision,
    )  # fmt: skip
