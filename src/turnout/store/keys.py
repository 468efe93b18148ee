"""Client keys, their spend per budget period and their events, as the store keeps them.

Only a hash of a key's secret is ever stored, with a short display form (`tk-…a1b2`). Written by
`turnout keys`, the admin API and the gateway (spend, events); read by the gateway's keyring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from turnout.store.location import is_postgres, postgres_module, sqlite_file


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    secret_sha256: str  # hex digest of the whole key, `tk-` included
    display: str  # `tk-…a1b2`: enough to recognise a key, never to use it
    created: float
    models: tuple[str, ...] = ()  # empty: every model
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period_s: float | None = None  # None: the budget never resets
    alert_at: float | None = None  # fraction of the budget that raises a soft alert
    expires: float | None = None  # unix seconds
    tenant: str | None = None
    priority: str = "normal"
    metadata: dict[str, str] = field(default_factory=dict)
    revoked: float | None = None  # when it was revoked
    revision: int = 0  # the store's change counter at its last change

    def public(self) -> dict[str, Any]:
        """Everything about the key that may be shown (no hash)."""
        out = {
            k: getattr(self, k)
            for k in self.__slots__  # type: ignore[attr-defined]
            if k not in ("secret_sha256", "revision")
        }
        out["models"] = list(self.models)
        return out


@dataclass(frozen=True, slots=True)
class SpendDelta:
    """What a key's requests added in one budget period (period 0: a budget that never resets)."""

    key_id: str
    period_start: float
    usd: float
    tokens: int
    requests: int


@dataclass(frozen=True, slots=True)
class KeyEvent:
    at: float
    key_id: str
    kind: str  # created, revoked, rotated, budget_alert
    detail: dict[str, Any] = field(default_factory=dict)


class KeyStore(Protocol):
    """The keys tables, open for reading and writing (created if absent)."""

    def add(self, key: KeyRecord) -> KeyRecord: ...

    def get(self, key_id: str) -> KeyRecord:
        """The key, or RecordNotFound."""
        ...

    def all(self) -> list[KeyRecord]: ...

    def changed_since(self, revision: int) -> list[KeyRecord]:
        """Keys added or changed after `revision`, oldest change first."""
        ...

    def revoke(self, key_id: str, at: float) -> KeyRecord: ...

    def rotate(self, key_id: str, secret_sha256: str, display: str) -> KeyRecord: ...

    def add_spend(self, deltas: list[SpendDelta]) -> None: ...

    def spend(self, key_id: str, period_start: float) -> SpendDelta: ...

    def append_events(self, events: list[KeyEvent]) -> None: ...

    def events(self, key_id: str, since: float = 0.0) -> list[KeyEvent]: ...

    def close(self) -> None: ...


def open_keys(url: str | Path) -> KeyStore:
    if is_postgres(url):
        return postgres_module("pg_keys").PostgresKeyStore(str(url))
    from turnout.store.sqlite_keys import SQLiteKeyStore

    return SQLiteKeyStore(sqlite_file(url))
