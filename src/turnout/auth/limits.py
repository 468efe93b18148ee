"""The counters behind a client key's limits: requests and tokens per minute, spend per period.

**Windows are sliding logs.** Each admission is an entry (when, one request, its tokens) that
counts for exactly `window_s` (60 s) after it was admitted, so "20 per minute" means no 60 s
span ever holds more than 20. A fixed window with smoothing was the alternative: it keeps two
counters per key, but its weighted guess at the previous minute lets a burst at a window's edge
through or refuses requests the real window has room for, and its Retry-After is a guess too. A
key's log holds one entry per request of the last minute, small enough to count exactly, and
Retry-After is exact: the time until enough old entries have left the window.

**Tokens** count the request's prediction at admission; `settle` corrects the entry to the real
count (a request that outlived its entry adds what it used beyond the prediction as a new
tokens-only entry). `settle` carries no handle, so the oldest open admission of the same key
with the same prediction is corrected: such admissions are interchangeable in every total.

**Budgets** reset on fixed periods aligned to the Unix epoch in UTC (`1d` starts at midnight
UTC), so every replica and the store agree on a period without sharing anything; a budget with
no period never resets. A request admitted under budget completes and its cost is settled even
when it crosses; the next is refused.

Headers follow OpenAI: `x-ratelimit-limit-*`, `-remaining-*` (after this request) and
`-reset-*`, the time until the window is back to its initial state (no request, or no token,
left in it), written as Go durations ("17ms", "1.5s", "1m0s").
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from turnout.auth.keys import period_start
from turnout.errors import TurnoutError

WINDOW_S = 60.0
_FORGET_AFTER_WINDOWS = 10  # an admission never settled is forgotten this many windows later


@dataclass(frozen=True)
class KeyLimits:
    """What a key allows (from the key's row); None: no such limit."""

    key_id: str
    rpm: int | None
    tpm: int | None
    budget_usd: float | None
    budget_period_s: float | None  # None: never resets
    alert_at: float | None = None  # soft budget, as a fraction of budget_usd

    @property
    def windowed(self) -> bool:
        return self.rpm is not None or self.tpm is not None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None  # None | "rpm" | "tpm" | "budget"
    retry_after_s: float | None  # None when waiting cannot help (or when admitted)
    headers: dict[str, str]  # OpenAI's x-ratelimit-*, to send as they are


class Limits(Protocol):
    async def admit(self, limits: KeyLimits, predicted_tokens: int) -> Verdict: ...

    async def settle(
        self, limits: KeyLimits, predicted_tokens: int, tokens: int, cost_usd: float
    ) -> None: ...

    def spent_usd(self, key_id: str) -> float: ...

    async def seed(self, limits: KeyLimits, start: float, usd: float) -> None:
        """Raise a key's spend in the period from `start` to what the durable record holds."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


SpendHook = Callable[[str, float, float], None]  # key id, period start (Unix s), usd added
AlertHook = Callable[[str, float, float, float], None]  # key id, period start, spent, budget


class LimitsError(TurnoutError, ValueError):
    """A caller passed counts that cannot be (negative tokens, a cost that is not a number)."""


def duration(seconds: float) -> str:
    """A Go duration as OpenAI writes it ("17ms", "1.5s", "6m0s"), rounded up to the ms."""
    return _duration(max(0, math.ceil(round(seconds * 1000, 6))))


@functools.lru_cache(maxsize=4096)  # most resets are the whole window, or close to it
def _duration(ms: int) -> str:
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


def rate_headers(
    limits: KeyLimits, requests: int, tokens: int, reset_requests_s: float, reset_tokens_s: float
) -> dict[str, str]:
    headers: dict[str, str] = {}
    if limits.rpm is not None:
        headers["x-ratelimit-limit-requests"] = str(limits.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, limits.rpm - requests))
        headers["x-ratelimit-reset-requests"] = duration(reset_requests_s)
    if limits.tpm is not None:
        headers["x-ratelimit-limit-tokens"] = str(limits.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, limits.tpm - tokens))
        headers["x-ratelimit-reset-tokens"] = duration(reset_tokens_s)
    return headers


def check_counts(predicted_tokens: int, tokens: int = 0, cost_usd: float = 0.0) -> None:
    if predicted_tokens < 0 or tokens < 0:
        raise LimitsError(f"token counts cannot be negative ({predicted_tokens}, {tokens})")
    if not math.isfinite(cost_usd) or cost_usd < 0:
        raise LimitsError(f"a cost must be a finite number ≥ 0, not {cost_usd!r}")


class Entry:
    """One admission in a window (or, with requests=0, tokens used past an expired one)."""

    __slots__ = ("at", "member", "requests", "stored", "tokens")

    def __init__(self, at: float, requests: int, tokens: int) -> None:
        self.at = at
        self.requests = requests
        self.tokens = tokens
        self.member: str | None = None  # its name in the shared log (it says its counts)
        self.stored: str | None = None  # the name the shared log is known to hold for it


class Window:
    """One key's sliding log: entries in admission order, with running totals."""

    def __init__(self) -> None:
        self.entries: deque[Entry] = deque()
        self.requests = 0
        self.tokens = 0

    def expire(self, now: float, window_s: float) -> None:
        edge = now - window_s
        entries = self.entries
        while entries and entries[0].at <= edge:
            gone = entries.popleft()
            self.requests -= gone.requests
            self.tokens -= gone.tokens

    def refusal(
        self, rpm: int | None, tpm: int | None, predicted: int, now: float, window_s: float
    ) -> tuple[str, float | None] | None:
        """Why one more request does not fit, and when it would (None: never); None if it fits."""
        if rpm is not None and self.requests + 1 > rpm:
            return "rpm", self._freed_in(now, window_s, self.requests + 1 - rpm, tokens=False)
        if tpm is not None and self.tokens + predicted > tpm:
            return "tpm", self._freed_in(now, window_s, self.tokens + predicted - tpm, tokens=True)
        return None

    def _freed_in(self, now: float, window_s: float, excess: int, *, tokens: bool) -> float | None:
        freed = 0
        for entry in self.entries:
            freed += entry.tokens if tokens else entry.requests
            if freed >= excess:
                return max(0.0, entry.at + window_s - now)
        return None  # more than the whole window holds: it never fits

    def add(self, now: float, requests: int, tokens: int) -> Entry:
        entry = Entry(now, requests, tokens)
        self.entries.append(entry)
        self.requests += requests
        self.tokens += tokens
        return entry

    def correct(
        self, entry: Entry | None, tokens: int, predicted: int, now: float, window_s: float
    ) -> Entry | None:
        """Set an admission's tokens to the real count; the tokens-only entry added when the
        admission already left the window and used more than predicted."""
        self.expire(now, window_s)
        if entry is not None and entry.at > now - window_s:
            self.tokens += tokens - entry.tokens
            entry.tokens = tokens
            return None
        if tokens > predicted:
            return self.add(now, 0, tokens - predicted)
        return None

    def reset_in(self, now: float, window_s: float, *, tokens: bool) -> tuple[float, float]:
        """Seconds until no request, and (if `tokens`) no token, is left in the window."""
        need_requests, need_tokens = self.requests > 0, tokens and self.tokens > 0
        until_requests = until_tokens = 0.0
        for entry in reversed(self.entries):  # the newest has both, as a rule
            if need_requests and entry.requests:
                until_requests, need_requests = entry.at + window_s - now, False
            if need_tokens and entry.tokens:
                until_tokens, need_tokens = entry.at + window_s - now, False
            if not (need_requests or need_tokens):
                break
        return until_requests, until_tokens


class Pending:
    """Admissions awaiting their settle, by key and predicted tokens, oldest first."""

    def __init__(self) -> None:
        self._by: dict[tuple[str, int], deque[Entry]] = {}

    def push(self, key_id: str, predicted: int, entry: Entry, forget_before: float) -> None:
        queue = self._by.setdefault((key_id, predicted), deque())
        while queue and queue[0].at < forget_before:
            queue.popleft()  # its request ended without a settle
        queue.append(entry)

    def pop(self, key_id: str, predicted: int) -> Entry | None:
        queue = self._by.get((key_id, predicted))
        if not queue:
            return None
        entry = queue.popleft()
        if not queue:
            del self._by[(key_id, predicted)]
        return entry


class Spend:
    """Each key's spend in its current period, as this process knows it."""

    def __init__(self) -> None:
        self._by: dict[str, tuple[float | None, float, float]] = {}  # period_s, start, usd
        self._alerted: dict[str, float] = {}  # key → the period whose alert went out

    def get(self, key_id: str, period_s: float | None, wall: float) -> float:
        known = self._by.get(key_id)
        if known is None or known[1] != period_start(wall, period_s):
            return 0.0
        return known[2]

    def set(self, key_id: str, period_s: float | None, start: float, usd: float) -> None:
        self._by[key_id] = (period_s, start, usd)

    def add(self, key_id: str, period_s: float | None, start: float, usd: float) -> float:
        known = self._by.get(key_id)
        total = usd + (known[2] if known is not None and known[1] == start else 0.0)
        self._by[key_id] = (period_s, start, total)
        return total

    def known(self) -> list[tuple[str, float | None, float, float]]:
        """(key id, period_s, period start, usd) for every key with spend."""
        return [(key_id, *known) for key_id, known in self._by.items()]

    def now(self, key_id: str, wall: float) -> float:
        known = self._by.get(key_id)
        return 0.0 if known is None else self.get(key_id, known[0], wall)

    def first_alert(self, limits: KeyLimits, start: float, spent: float) -> bool:
        """True once per key and period, when spend first reaches the soft budget."""
        if limits.alert_at is None or limits.budget_usd is None:
            return False
        if spent < limits.alert_at * limits.budget_usd or self._alerted.get(limits.key_id) == start:
            return False
        self._alerted[limits.key_id] = start
        return True


class LocalLimits:
    """Limits enforced by this process alone.

    No method awaits between checking and reserving, so under asyncio every admission is atomic;
    it is not meant to be shared between threads. Spend starts at zero: `seed_spend` tells it
    what the durable record already holds.
    """

    def __init__(
        self,
        *,
        window_s: float = WINDOW_S,
        on_spend: SpendHook | None = None,
        on_alert: AlertHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.window_s = window_s
        self.on_spend = on_spend
        self.on_alert = on_alert
        self.clock = clock
        self.wall = wall
        self.windows: dict[str, Window] = {}
        self.pending = Pending()
        self.spend = Spend()

    async def admit(self, limits: KeyLimits, predicted_tokens: int) -> Verdict:
        return self.admit_now(limits, predicted_tokens)

    async def settle(
        self, limits: KeyLimits, predicted_tokens: int, tokens: int, cost_usd: float
    ) -> None:
        self.settle_now(limits, predicted_tokens, tokens, cost_usd)

    def spent_usd(self, key_id: str) -> float:
        return self.spend.now(key_id, self.wall())

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def seed(self, limits: KeyLimits, start: float, usd: float) -> None:
        self.seed_spend(limits, start, usd)

    def seed_spend(self, limits: KeyLimits, start: float, usd: float) -> None:
        """What the durable record says the key spent in the period from `start` (as passed
        to `on_spend`); only ever raises the count, and a past period is ignored."""
        wall = self.wall()
        if start != period_start(wall, limits.budget_period_s):
            return
        if usd > self.spend.get(limits.key_id, limits.budget_period_s, wall):
            self.spend.set(limits.key_id, limits.budget_period_s, start, usd)

    def window(self, key_id: str, now: float | None = None) -> Window:
        """A key's window, with what has left it gone."""
        window = self.windows.get(key_id)
        if window is None:
            window = self.windows[key_id] = Window()
        window.expire(self.clock() if now is None else now, self.window_s)
        return window

    def admit_now(self, limits: KeyLimits, predicted_tokens: int) -> Verdict:
        """`admit` without awaiting."""
        return self.admit_entry(limits, predicted_tokens)[0]

    def admit_entry(
        self, limits: KeyLimits, predicted_tokens: int, *, spent_usd: float | None = None
    ) -> tuple[Verdict, Entry | None]:
        """The verdict, and the entry an admission took in the window; `spent_usd` replaces
        the spend this process knows."""
        check_counts(predicted_tokens)
        now = self.clock()
        window = self.window(limits.key_id, now) if limits.windowed else None
        if limits.budget_usd is not None:
            wall = self.wall()
            spent = self.spend.get(limits.key_id, limits.budget_period_s, wall)
            if spent_usd is not None:
                spent = spent_usd
            if spent >= limits.budget_usd:
                retry = budget_retry(limits, wall)
                return Verdict(False, "budget", retry, self._headers(limits, window, now)), None
        if window is None:
            return Verdict(True, None, None, {}), None
        refusal = window.refusal(limits.rpm, limits.tpm, predicted_tokens, now, self.window_s)
        if refusal is not None:
            return Verdict(False, *refusal, self._headers(limits, window, now)), None
        entry = self._record(window, limits.key_id, predicted_tokens, now)
        return Verdict(True, None, None, self._headers(limits, window, now)), entry

    def record(self, limits: KeyLimits, predicted_tokens: int) -> Entry:
        """Count an admission decided elsewhere in this process's window."""
        now = self.clock()
        return self._record(self.window(limits.key_id, now), limits.key_id, predicted_tokens, now)

    def _record(self, window: Window, key_id: str, predicted_tokens: int, now: float) -> Entry:
        entry = window.add(now, 1, predicted_tokens)
        forget = now - _FORGET_AFTER_WINDOWS * self.window_s
        self.pending.push(key_id, predicted_tokens, entry, forget)
        return entry

    def _headers(self, limits: KeyLimits, window: Window | None, now: float) -> dict[str, str]:
        if window is None:
            return {}
        reset = window.reset_in(now, self.window_s, tokens=limits.tpm is not None)
        return rate_headers(limits, window.requests, window.tokens, *reset)

    def correct(
        self, limits: KeyLimits, predicted_tokens: int, tokens: int
    ) -> tuple[Entry | None, Entry | None]:
        """Settle an admission's tokens in this process's window: the admission's entry, and
        the tokens-only entry added if it had already left the window."""
        entry = self.pending.pop(limits.key_id, predicted_tokens)
        if not limits.windowed:
            return entry, None
        now = self.clock()
        window = self.window(limits.key_id, now)
        return entry, window.correct(entry, tokens, predicted_tokens, now, self.window_s)

    def settle_now(
        self, limits: KeyLimits, predicted_tokens: int, tokens: int, cost_usd: float
    ) -> None:
        check_counts(predicted_tokens, tokens, cost_usd)
        self.correct(limits, predicted_tokens, tokens)
        if cost_usd <= 0:
            return
        start = period_start(self.wall(), limits.budget_period_s)
        spent = self.spend.add(limits.key_id, limits.budget_period_s, start, cost_usd)
        if self.on_spend is not None:
            self.on_spend(limits.key_id, start, cost_usd)
        if self.on_alert is not None and self.spend.first_alert(limits, start, spent):
            assert limits.budget_usd is not None
            self.on_alert(limits.key_id, start, spent, limits.budget_usd)


def budget_retry(limits: KeyLimits, wall: float) -> float | None:
    """Seconds until the budget's period ends; None if it never resets."""
    if limits.budget_period_s is None:
        return None
    return period_start(wall, limits.budget_period_s) + limits.budget_period_s - wall
