"""Admission control: per-deployment caps, a priority queue with deadlines, fair shares by tokens.

A request waits at the gateway rather than in an overloaded server's queue. Among waiters, a
higher priority class goes first; within a class, start-time fair queuing over tokens, so one
tenant's long generations cannot starve the others. A request whose predicted completion misses
its deadline is shed at once, not left to time out late.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from turnout.errors import ApiError, TurnoutError

PRIORITIES = {"high": 0, "normal": 1, "low": 2}
MAX_MS = 86_400_000  # a day: the longest deadline or latency budget a client may give


def milliseconds(raw: Any, param: str) -> float:
    """A client's duration in ms (a number or a numeric string): finite, 0 < ms ≤ a day.

    Anything else is a 400 naming `param`; NaN and infinity fail the range check too.
    """
    try:
        value = math.nan if isinstance(raw, bool) else float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not 0 < value <= MAX_MS:
        raise ApiError(
            400,
            f"`{param}` must be a number of milliseconds from 1 to {MAX_MS}; got {str(raw)[:40]!r}",
            code="invalid_value",
            param=param,
        )
    return value


class Shed(TurnoutError):
    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass(order=True)
class _Waiter:
    priority: int
    tag: float  # virtual start time in tokens: fairness within a priority class
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class FairShare:
    """Virtual token counters per tenant (start-time fair queuing)."""

    def __init__(self) -> None:
        self._finish: dict[str, float] = {}
        self.now = 0.0  # the virtual time of the last request let in

    def tag(self, tenant: str, tokens: float, weight: float = 1.0) -> float:
        start = max(self.now, self._finish.get(tenant, 0.0))
        self._finish[tenant] = start + tokens / max(weight, 1e-9)
        if len(self._finish) > 100_000:  # forget tenants that fell behind the present
            self._finish = {t: f for t, f in self._finish.items() if f > self.now}
        return start


class Gate:
    """At most `capacity` attempts in flight on one deployment; the rest wait in order."""

    def __init__(self, capacity: int, max_queue: int) -> None:
        self.capacity = capacity
        self.max_queue = max_queue
        self.in_use = 0
        self._heap: list[_Waiter] = []
        self._seq = itertools.count()
        self.fair = FairShare()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._heap if not w.future.done())

    def ahead_of(self, priority: int) -> int:
        """Waiters that would be served before a new request of this priority."""
        return sum(1 for w in self._heap if w.priority <= priority and not w.future.done())

    def predicted_wait_s(self, priority: int, service_s: float) -> float:
        busy = self.in_use + self.ahead_of(priority) - self.capacity + 1
        return 0.0 if busy <= 0 else busy * service_s / self.capacity

    async def enter(
        self,
        priority: int,
        tenant: str,
        tokens: float,
        weight: float,
        timeout_s: float | None,
        *,
        queue_limit: bool = True,
    ) -> None:
        tag = self.fair.tag(tenant, tokens, weight)
        if self.in_use < self.capacity and not self.waiting:
            self.in_use += 1
            self.fair.now = tag
            return
        if queue_limit and self.waiting >= self.max_queue:
            raise Shed(f"the queue is full ({self.max_queue} waiting)", 1.0)
        waiter = _Waiter(priority, tag, next(self._seq), asyncio.get_running_loop().create_future())
        heapq.heappush(self._heap, waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), timeout_s)
        except TimeoutError:
            if waiter.future.done():  # let in just as the deadline passed: keep the slot
                return
            waiter.future.cancel()
            raise Shed("its deadline passed while it waited", 1.0) from None
        except BaseException:
            # Whatever ended the wait (the client left, a bug), the waiter must not stay queued:
            # a dead waiter that is later given the slot would hold it forever.
            if waiter.future.done() and not waiter.future.cancelled():
                Gate.leave(self)  # let in, but the request left before using the slot
            else:
                waiter.future.cancel()
            raise

    def leave(self) -> None:
        self.in_use -= 1
        while self._heap and self.in_use < self.capacity:
            waiter = heapq.heappop(self._heap)
            if waiter.future.done():
                continue  # gave up waiting
            self.in_use += 1
            self.fair.now = waiter.tag
            waiter.future.set_result(None)


@dataclass(frozen=True, slots=True)
class Ticket:
    """Who is asking, how urgently, and by when."""

    tenant: str
    priority: int
    weight: float
    deadline_s: float | None  # seconds after the request arrived
    claim_ignored: str | None = None  # a tenant named by header that the client did not prove


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a verified client key says is asking: it outranks anything a header claims."""

    key_id: str
    tenant: str | None
    priority: str = "normal"


def client_key(headers: dict[str, str] | Any) -> str | None:
    """The client's API key, as OpenAI SDKs (`Authorization: Bearer`) or Anthropic's send it."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return str(auth[7:].strip())
    key = headers.get("x-api-key")
    return str(key) if key else None


def identify(
    headers: dict[str, str] | Any,
    tenants: Any,
    model_deadline_ms: float | None,
    metadata: Any,
    caller: Caller | None = None,
) -> Ticket:
    """Tenant, priority and deadline from the API key, headers and config.

    A tenant is proven, not claimed: a verified client key (`caller`) names its own tenant and
    priority ceiling; otherwise a configured tenant is selected by its key, or by
    `x-turnout-tenant` only where it says `header_claim: true`. A priority ceiling is one a client
    may lower by header, never raise; anyone else's ceiling is `normal`.
    """
    if caller is not None:
        return _from_caller(caller, headers, tenants, model_deadline_ms, metadata)
    import hashlib

    tenant = None
    key = client_key(headers)
    digest = hashlib.sha256(key.encode()).hexdigest() if key else None
    if digest is not None:
        tenant = next((t for t in tenants.values() if digest in t.api_key_sha256), None)
    claimed = headers.get(TENANT_HEADER)
    ignored = None
    if tenant is None and claimed:
        named = tenants.get(claimed)
        if named is not None and named.header_claim:
            tenant = named
        else:
            ignored = str(claimed)[:64]
    fallback = f"key:{digest[:12]}" if digest else "anonymous"
    name = tenant.name if tenant is not None else fallback
    ceiling = PRIORITIES[tenant.priority] if tenant else PRIORITIES["normal"]
    priority = _priority(headers, ceiling)
    deadline = _deadline(headers, model_deadline_ms, metadata)
    return Ticket(name, priority, tenant.weight if tenant else 1.0, deadline, ignored)


def _from_caller(
    caller: Caller, headers: Any, tenants: Any, model_deadline_ms: float | None, metadata: Any
) -> Ticket:
    name = caller.tenant or f"key:{caller.key_id}"
    configured = tenants.get(caller.tenant) if caller.tenant else None
    claimed = headers.get(TENANT_HEADER)
    ignored = str(claimed)[:64] if claimed and claimed != caller.tenant else None
    priority = _priority(headers, PRIORITIES[caller.priority])
    weight = configured.weight if configured is not None else 1.0
    return Ticket(name, priority, weight, _deadline(headers, model_deadline_ms, metadata), ignored)


def _priority(headers: Any, ceiling: int) -> int:
    asked = headers.get(PRIORITY_HEADER)
    if asked is not None and asked not in PRIORITIES:
        raise ApiError(
            400,
            f"{PRIORITY_HEADER} must be one of {', '.join(PRIORITIES)}; got {str(asked)[:40]!r}",
            code="invalid_value",
            param=PRIORITY_HEADER,
        )
    return max(ceiling, PRIORITIES[asked]) if asked else ceiling


def _deadline(headers: Any, model_deadline_ms: float | None, metadata: Any) -> float | None:
    meta = metadata if isinstance(metadata, dict) else {}
    raw = headers.get(DEADLINE_HEADER) or meta.get("deadline_ms")
    deadline = model_deadline_ms / 1000 if model_deadline_ms else None
    if raw is not None:
        deadline = milliseconds(raw, DEADLINE_HEADER) / 1000
    return deadline


TENANT_HEADER = "x-turnout-tenant"
PRIORITY_HEADER = "x-turnout-priority"
DEADLINE_HEADER = "x-turnout-deadline-ms"
