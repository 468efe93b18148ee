"""A minimal in-memory stand-in for the key counters (`limits.py`), with the same interface:
one gateway's sliding one-minute windows for requests and tokens, and spend per budget period."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from turnout.auth.keys import period_start

WINDOW_S = 60.0


@dataclass(frozen=True)
class KeyLimits:
    key_id: str
    rpm: int | None
    tpm: int | None
    budget_usd: float | None
    budget_period_s: float | None  # None: never resets
    alert_at: float | None = None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None  # None | "rpm" | "tpm" | "budget"
    retry_after_s: float | None
    headers: dict[str, str]


class Limits(Protocol):
    async def admit(self, limits: KeyLimits, predicted_tokens: int) -> Verdict: ...

    async def settle(
        self, limits: KeyLimits, predicted_tokens: int, tokens: int, cost_usd: float
    ) -> None: ...

    def spent_usd(self, key_id: str) -> float: ...


class LocalLimits:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._requests: dict[str, deque[float]] = {}
        self._tokens: dict[str, deque[tuple[float, int]]] = {}
        self._used: dict[str, int] = {}  # the tokens in each key's window, kept as a running sum
        self._spent: dict[str, tuple[float, float]] = {}  # key → (period start, usd)

    async def admit(self, limits: KeyLimits, predicted_tokens: int) -> Verdict:
        now = self.clock()
        reqs = _trim(self._requests.setdefault(limits.key_id, deque()), now)
        toks = self._tokens.setdefault(limits.key_id, deque())
        used = self._used.get(limits.key_id, 0)
        while toks and toks[0][0] <= now - WINDOW_S:
            used -= toks.popleft()[1]
        self._used[limits.key_id] = used
        if limits.budget_usd is not None and self._spent_now(limits, now) >= limits.budget_usd:
            end = period_start(now, limits.budget_period_s) + (limits.budget_period_s or math.inf)
            wait = None if math.isinf(end) else end - now
            return Verdict(False, "budget", wait, _headers(limits, reqs, used, now))
        if limits.rpm is not None and len(reqs) >= limits.rpm:
            wait = reqs[0] + WINDOW_S - now
            return Verdict(False, "rpm", wait, _headers(limits, reqs, used, now))
        if limits.tpm is not None and used and used + predicted_tokens > limits.tpm:
            wait = toks[0][0] + WINDOW_S - now
            return Verdict(False, "tpm", wait, _headers(limits, reqs, used, now))
        reqs.append(now)
        toks.append((now, predicted_tokens))
        self._used[limits.key_id] = used + predicted_tokens
        return Verdict(True, None, None, _headers(limits, reqs, used + predicted_tokens, now))

    async def settle(
        self, limits: KeyLimits, predicted_tokens: int, tokens: int, cost_usd: float
    ) -> None:
        now = self.clock()
        if tokens != predicted_tokens:
            self._tokens.setdefault(limits.key_id, deque()).append((now, tokens - predicted_tokens))
            self._used[limits.key_id] = self._used.get(limits.key_id, 0) + tokens - predicted_tokens
        start = period_start(now, limits.budget_period_s)
        self._spent[limits.key_id] = (start, self._spent_now(limits, now) + cost_usd)

    def spent_usd(self, key_id: str) -> float:
        return self._spent.get(key_id, (0.0, 0.0))[1]

    def _spent_now(self, limits: KeyLimits, now: float) -> float:
        start, usd = self._spent.get(limits.key_id, (0.0, 0.0))
        return usd if start == period_start(now, limits.budget_period_s) else 0.0


def _trim(window: deque[float], now: float) -> deque[float]:
    while window and window[0] <= now - WINDOW_S:
        window.popleft()
    return window


def _headers(limits: KeyLimits, reqs: deque[float], tokens: int, now: float) -> dict[str, str]:
    out: dict[str, str] = {}
    if limits.rpm is not None:
        reset = reqs[0] + WINDOW_S - now if reqs else 0.0
        out["x-ratelimit-limit-requests"] = str(limits.rpm)
        out["x-ratelimit-remaining-requests"] = str(max(limits.rpm - len(reqs), 0))
        out["x-ratelimit-reset-requests"] = f"{max(reset, 0):.3f}s"
    if limits.tpm is not None:
        out["x-ratelimit-limit-tokens"] = str(limits.tpm)
        out["x-ratelimit-remaining-tokens"] = str(max(limits.tpm - tokens, 0))
        out["x-ratelimit-reset-tokens"] = f"{WINDOW_S if tokens else 0:.3f}s"
    return out
