"""Minting client keys and reading what a key is allowed, as `turnout keys` and the admin API
say it: `--rpm 60 --budget-usd 5 --budget-period 30d --expires 90d`."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from turnout.errors import TurnoutError
from turnout.routing.admission import PRIORITIES
from turnout.store.keys import KeyRecord

PREFIX = "tk-"
SECRET_BYTES = 24  # 192 bits
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class KeySpecError(TurnoutError):
    """A key's settings that cannot be: the message names the setting."""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def mint() -> tuple[str, str, str]:
    """A new secret key, its hash and its display form."""
    key = PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    return key, digest(key), f"{PREFIX}…{key[-4:]}"


def new_id() -> str:
    return "key_" + secrets.token_hex(6)


def duration_s(text: str, what: str) -> float:
    """`90d`, `12h`, `30m`, `45s` in seconds."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or float(m.group(1)) <= 0:
        raise KeySpecError(f"{what}: expected a duration such as 1d, 7d, 30d or 12h; got {text!r}")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def period_start(now: float, period_s: float | None) -> float:
    """The start of the budget period `now` falls in: periods are aligned to the epoch (UTC), so
    every gateway agrees on them; 0 for a budget that never resets."""
    return 0.0 if period_s is None else math.floor(now / period_s) * period_s


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new key allows, before it has a secret."""

    name: str
    models: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period_s: float | None = None
    alert_at: float | None = None
    expires_in_s: float | None = None
    tenant: str | None = None
    priority: str = "normal"
    metadata: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> KeySpec:
        """From the admin API's JSON (the CLI's flags map onto the same names)."""
        known = {
            "name", "models", "rpm", "tpm", "budget_usd", "budget_period", "alert_at",
            "expires", "tenant", "priority", "metadata",
        }  # fmt: skip
        unknown = sorted(set(raw) - known)
        if unknown:
            raise KeySpecError(f"{unknown[0]}: unknown setting (known: {', '.join(sorted(known))})")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise KeySpecError("name: required, a string of 1 to 200 characters")
        models = raw.get("models") or []
        if isinstance(models, str):
            models = [m.strip() for m in models.split(",") if m.strip()]
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise KeySpecError("models: expected a list of model names")
        period = raw.get("budget_period")
        budget = _number(raw, "budget_usd", minimum=0.0)
        if period is not None and budget is None:
            raise KeySpecError("budget_period: only with budget_usd")
        alert = _number(raw, "alert_at", minimum=0.0)
        if alert is not None and (alert > 1 or budget is None):
            raise KeySpecError("alert_at: a fraction of budget_usd from 0 to 1, with budget_usd")
        priority = raw.get("priority", "normal")
        if priority not in PRIORITIES:
            raise KeySpecError(f"priority: one of {', '.join(PRIORITIES)}; got {priority!r}")
        tenant = raw.get("tenant")
        if tenant is not None and (not isinstance(tenant, str) or not tenant or len(tenant) > 200):
            raise KeySpecError("tenant: a string of 1 to 200 characters")
        metadata = raw.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise KeySpecError("metadata: expected a mapping of strings to strings")
        expires = raw.get("expires")
        expires_in_s = None if expires in (None, "never") else duration_s(str(expires), "expires")
        return cls(
            name=name.strip(),
            models=tuple(models),
            rpm=_integer(raw, "rpm"),
            tpm=_integer(raw, "tpm"),
            budget_usd=budget,
            budget_period_s=_period(period),
            alert_at=alert,
            expires_in_s=expires_in_s,
            tenant=tenant,
            priority=priority,
            metadata=tuple(sorted(metadata.items())),
        )

    def record(self, secret_sha256: str, display: str, now: float | None = None) -> KeyRecord:
        now = time.time() if now is None else now
        return KeyRecord(
            id=new_id(),
            name=self.name,
            secret_sha256=secret_sha256,
            display=display,
            created=now,
            models=self.models,
            rpm=self.rpm,
            tpm=self.tpm,
            budget_usd=self.budget_usd,
            budget_period_s=self.budget_period_s,
            alert_at=self.alert_at,
            expires=None if self.expires_in_s is None else now + self.expires_in_s,
            tenant=self.tenant,
            priority=self.priority,
            metadata=dict(self.metadata),
        )


def _period(raw: Any) -> float | None:
    if raw is None or raw == "never":
        return None
    if not isinstance(raw, str):
        raise KeySpecError(f"budget_period: expected 1d, 7d, 30d or never; got {raw!r}")
    return duration_s(raw, "budget_period")


def _number(raw: Mapping[str, Any], name: str, *, minimum: float) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise KeySpecError(f"{name}: expected a number; got {value!r}")
    if value < minimum:
        raise KeySpecError(f"{name}: must be ≥ {minimum:g}; got {value}")
    return float(value)


def _integer(raw: Mapping[str, Any], name: str) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise KeySpecError(f"{name}: expected a whole number ≥ 1; got {value!r}")
    return value
