"""Client keys on the request path: who is asking (401), may they use this model (403), are they
within their limits and budget (429); and, when the request ends, what it really cost them.

Lookups are in memory (the keyring); spend and events reach the store from a background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from turnout.auth.keyring import Keyring
from turnout.auth.keys import period_start
from turnout.auth.limits import KeyLimits, Limits, LocalLimits
from turnout.config.schema import AuthConfig
from turnout.errors import ApiError
from turnout.lifecycle.run import Run
from turnout.routing.admission import Caller, client_key
from turnout.routing.router import estimate_prompt_tokens, max_output_tokens
from turnout.store.errors import StoreError
from turnout.store.keys import KeyEvent, KeyRecord, KeyStore, SpendDelta, open_keys
from turnout.telemetry.metrics import Metrics

log = logging.getLogger("turnout.auth")


class Refused(ApiError):
    """A request its key (or the lack of one) does not allow."""


@dataclass(frozen=True, slots=True)
class _Admitted:
    key: KeyRecord
    limits: KeyLimits | None  # None: the key has no limits to settle
    predicted: int


def predicted_tokens(body: Mapping[str, Any]) -> int:
    """What a request may cost in tokens, as admission counts it: its prompt (estimated) and
    the answer it allows itself (max_tokens); settled on the real count when it ends."""
    return estimate_prompt_tokens(body) + (max_output_tokens(body) or 0)


class Guard:
    def __init__(
        self,
        auth: AuthConfig,
        mode: str,
        store_url: str,
        metrics: Metrics,
        state_url: str | None = None,
    ) -> None:
        self.auth = auth
        self.enabled = mode == "keys"
        self.store_url = store_url
        self.metrics = metrics
        self.state_url = state_url
        self.limits: Limits = self._counters(state_url)
        self._store: KeyStore | None = None
        self.keyring: Keyring | None = None
        self._admitted: dict[str, _Admitted] = {}
        self._spend: dict[tuple[str, float], SpendDelta] = {}
        self._events: list[KeyEvent] = []
        self._alerted: set[tuple[str, float]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._store_failing = False

    def _counters(self, state_url: str | None) -> Limits:
        if state_url is None or not self.enabled:
            return LocalLimits(on_alert=self._alert)
        from turnout.auth.shared_limits import SharedLimits  # loads the Redis client

        return SharedLimits(state_url, self.metrics.registry, on_alert=self._alert)

    # -- lifetime ------------------------------------------------------------------------------

    def store(self) -> KeyStore:
        if self._store is None:
            self._store = open_keys(self.store_url)
        return self._store

    def ring(self) -> Keyring:
        if self.keyring is None:
            self.keyring = Keyring(self.store())
        return self.keyring

    async def start(self) -> None:
        if not self.enabled:
            return
        ring = self.ring()
        keys = await asyncio.to_thread(ring.refresh)
        self.metrics.keys.update(k.id for k in keys)
        if isinstance(self.limits, LocalLimits):
            log.info(
                "auth: each gateway enforces key limits alone (no state.url): N replicas "
                "allow up to N times a key's rpm, tpm and budget"
            )
        await self.limits.start()
        await self._seed(keys)
        usable = sum(1 for k in keys if k.revoked is None)
        log.info(
            "auth: client keys required (%d usable); create one with `turnout keys create`",
            usable,
        )
        self._loops = [
            asyncio.create_task(self._every(self.auth.refresh_s, self._refresh)),
            asyncio.create_task(self._every(self.auth.spend_flush_s, self.flush)),
        ]

    async def _seed(self, keys: list[KeyRecord]) -> None:
        """This period's spend, as the store has it, so a restart does not reset budgets."""
        now = time.time()
        store = self.store()
        for key in keys:
            if key.budget_usd is None or key.revoked is not None:
                continue
            start = period_start(now, key.budget_period_s)
            spent = await asyncio.to_thread(store.spend, key.id, start)
            if spent.usd > 0:
                await self.limits.seed(_limits_of(key), start, spent.usd)
            alerts = await asyncio.to_thread(store.events, key.id, start)
            if any(e.kind == "budget_alert" for e in alerts):
                self._alerted.add((key.id, start))

    async def close(self) -> None:
        for loop in self._loops:
            loop.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        await self.flush()
        await self.limits.close()
        if self._store is not None:
            self._store.close()
            self._store = None

    async def _every(self, seconds: float, work: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            await work()

    async def _refresh(self) -> None:
        try:
            changed = await asyncio.to_thread(self.ring().refresh)
        except StoreError as exc:
            self._store_trouble(f"keys could not be re-read ({exc}); the last known are in use")
            return
        self._store_failing = False
        self.metrics.keys.update(k.id for k in changed)

    async def flush(self) -> None:
        """Spend and events to the store; kept for the next flush while the store fails."""
        spend, self._spend = list(self._spend.values()), {}
        events, self._events = self._events, []
        if not spend and not events:
            return
        try:
            if spend:
                await asyncio.to_thread(self.store().add_spend, spend)
            if events:
                await asyncio.to_thread(self.store().append_events, events)
        except StoreError as exc:
            for delta in spend:
                self._add_spend(delta)
            self._events = events + self._events
            self._store_trouble(f"key spend could not be written ({exc}); it is kept to retry")

    def _store_trouble(self, message: str) -> None:
        if not self._store_failing:
            log.error("auth: %s", message)
        self._store_failing = True

    # -- the request path ----------------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str]) -> Caller | None:
        """The verified caller, or Refused (401); None when keys are not required."""
        if not self.enabled:
            return None
        secret = client_key(headers)
        if secret is None:
            raise _refused(
                401, "no API key: send `Authorization: Bearer tk-…` or `x-api-key: tk-…`"
            )
        key = self.ring().find(secret)
        if key is None:
            raise _refused(401, "invalid API key")
        if key.revoked is not None:
            raise _refused(401, f"API key {key.id} was revoked")
        if key.expires is not None and key.expires <= time.time():
            raise _refused(401, f"API key {key.id} has expired")
        return Caller(key.id, key.tenant, key.priority)

    async def admit(
        self, caller: Caller | None, model: str, body: Mapping[str, Any], run_id: str
    ) -> dict[str, str]:
        """The rate-limit headers to send back; Refused (403, 429) when the key does not allow
        the request. An admitted request is settled when it ends (`finished`)."""
        if caller is None:
            return {}
        key = self.ring().by_id[caller.key_id]
        if key.models and model not in key.models:
            allowed = ", ".join(key.models)
            raise _refused(
                403,
                f"API key {key.id} may not use model {model[:64]!r} (allowed: {allowed})",
                type="permission_error",
                code="model_not_allowed",
                param="model",
            )
        if key.rpm is None and key.tpm is None and key.budget_usd is None:
            self._admitted[run_id] = _Admitted(key, None, 0)
            return {}
        limits = _limits_of(key)
        predicted = predicted_tokens(body)
        verdict = await self.limits.admit(limits, predicted)
        if not verdict.ok:
            raise _over_limit(key, verdict.reason, verdict.retry_after_s, verdict.headers)
        self._admitted[run_id] = _Admitted(key, limits, predicted)
        return verdict.headers

    def finished(self, run: Run) -> None:
        """Charge the key what the run really cost: every attempt, re-ask and continuation."""
        if not self.enabled:
            return
        tokens, cost = run.total_tokens, run.cost_usd
        self.metrics.observe_key(run, tokens, cost)
        admitted = self._admitted.pop(run.id, None)
        if admitted is None:
            return  # refused before it reached a model
        key = admitted.key
        start = period_start(time.time(), key.budget_period_s)
        self._add_spend(SpendDelta(key.id, start, cost, tokens, 1))
        if admitted.limits is not None:
            settle = self._settle(admitted, run.id, tokens, cost)
            task = asyncio.get_running_loop().create_task(settle)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _settle(self, admitted: _Admitted, run_id: str, tokens: int, cost: float) -> None:
        limits = admitted.limits
        assert limits is not None
        try:
            await self.limits.settle(limits, admitted.predicted, tokens, cost)
        except Exception:
            log.exception("auth: settling request %s on key %s failed", run_id, limits.key_id)

    def _alert(self, key_id: str, start: float, spent: float, budget: float) -> None:
        """The soft budget crossed: once per key and period (across replicas with Redis, and
        across restarts through the store's events)."""
        if (key_id, start) in self._alerted:
            return
        self._alerted.add((key_id, start))
        alert_at = spent / budget if budget else 1.0
        key = self.keyring.by_id.get(key_id) if self.keyring is not None else None
        if key is not None and key.alert_at is not None:
            alert_at = key.alert_at
        log.warning(
            "auth: key %s has spent $%.4f of its $%.4f budget this period (alert at %g%%)",
            key_id,
            spent,
            budget,
            alert_at * 100,
        )
        self.metrics.key_budget_alerts.labels(self.metrics.key(key_id)).inc()
        detail = {"spent_usd": spent, "budget_usd": budget, "period_start": start}
        self._events.append(KeyEvent(time.time(), key_id, "budget_alert", detail))

    def _add_spend(self, delta: SpendDelta) -> None:
        slot = (delta.key_id, delta.period_start)
        old = self._spend.get(slot)
        if old is not None:
            delta = SpendDelta(
                delta.key_id,
                delta.period_start,
                old.usd + delta.usd,
                old.tokens + delta.tokens,
                old.requests + delta.requests,
            )
        self._spend[slot] = delta


def _limits_of(key: KeyRecord) -> KeyLimits:
    return KeyLimits(key.id, key.rpm, key.tpm, key.budget_usd, key.budget_period_s, key.alert_at)


def _refused(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str = "invalid_api_key",
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Refused:
    return Refused(status, message, type=type, code=code, param=param, headers=headers)


def _over_limit(
    key: KeyRecord,
    reason: str | None,
    retry_after_s: float | None,
    headers: dict[str, str],
) -> Refused:
    out = dict(headers)
    if retry_after_s is not None:
        out["retry-after"] = str(max(1, math.ceil(retry_after_s)))
    if reason == "budget":
        message = f"API key {key.id} has spent its budget of ${key.budget_usd:g}"
        if retry_after_s is not None:
            message += f"; it resets in {retry_after_s / 3600:.1f} h"
        out["x-should-retry"] = "false"
        return _refused(
            429, message, type="insufficient_quota", code="insufficient_quota", headers=out
        )
    what = {"rpm": f"{key.rpm} requests", "tpm": f"{key.tpm} tokens"}.get(reason or "", "limit")
    message = f"rate limit reached for API key {key.id}: {what} per minute"
    if retry_after_s is not None:
        message += f"; retry after {retry_after_s:.1f} s"
    out["x-should-retry"] = "true"
    kind = "tokens" if reason == "tpm" else "requests"
    return _refused(429, message, type=kind, code="rate_limit_exceeded", headers=out)
