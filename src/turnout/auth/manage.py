"""What `turnout keys` and the admin API do to keys: one implementation for both."""

from __future__ import annotations

import time
from typing import Any

from turnout.auth.keys import KeySpec, mint, period_start
from turnout.store.errors import NoRecordStore
from turnout.store.keys import KeyEvent, KeyRecord, KeyStore
from turnout.store.read import open_reader


def create(store: KeyStore, spec: KeySpec) -> tuple[KeyRecord, str]:
    """The new key's record and its secret: the only time the secret exists outside the client."""
    secret, sha, display = mint()
    key = store.add(spec.record(sha, display))
    store.append_events([KeyEvent(key.created, key.id, "created", {"name": key.name})])
    return key, secret


def rotate(store: KeyStore, key_id: str) -> tuple[KeyRecord, str]:
    """A new secret for the same key (limits, spend and history stay); the old one stops."""
    secret, sha, display = mint()
    key = store.rotate(key_id, sha, display)
    store.append_events([KeyEvent(time.time(), key_id, "rotated", {"display": display})])
    return key, secret


def revoke(store: KeyStore, key_id: str) -> KeyRecord:
    key = store.revoke(key_id, time.time())
    store.append_events([KeyEvent(time.time(), key_id, "revoked", {})])
    return key


def status(key: KeyRecord, now: float | None = None) -> str:
    now = time.time() if now is None else now
    if key.revoked is not None:
        return "revoked"
    if key.expires is not None and key.expires <= now:
        return "expired"
    return "active"


def describe(store: KeyStore, record_url: str, key_id: str) -> dict[str, Any]:
    """A key's settings, its spend in the current budget period, and its requests and tokens by
    model over the same period (a key without a budget: since it was created)."""
    key = store.get(key_id)
    now = time.time()
    start = period_start(now, key.budget_period_s)
    spent = store.spend(key_id, start)
    since = max(start, key.created)
    try:
        with open_reader(record_url) as reader:
            by_model = reader.key_usage(key_id, since)
    except NoRecordStore:
        by_model = []
    return {
        **key.public(),
        "status": status(key, now),
        "period": {
            "start": since,
            "spent_usd": spent.usd,
            "requests": spent.requests,
            "tokens": spent.tokens,
            "remaining_usd": None
            if key.budget_usd is None
            else max(key.budget_usd - spent.usd, 0.0),
        },
        "by_model": by_model,
        "events": [
            {"at": e.at, "kind": e.kind, **e.detail} for e in store.events(key_id, since)[-20:]
        ],
    }
