"""Balancing one model's traffic across its instances by the work they still have to do.

Strategies are pure functions of a fleet state (`InstanceState` per instance) and the request
(`Ask`). `tracker.LoadTracker` is the bookkeeping the gateway keeps that state with: a request
starts, streams tokens and ends; the tracker learns each instance's prefill and decode speed
(`rates.ServiceRates`) from those events, and folds in what the servers report (`signals.Signal`).

`least_work` plays each instance forward from its outstanding work — prefill tokens not yet
processed and decode tokens still to come for every request in flight there, at the instance's
measured prefill rate and decode step time (which grows with the batch and its context) — and
sends the request where it adds the least delay: its own completion time plus the slowdown it
imposes on the requests it would share steps with. In-flight requests count by the tokens they
still have to generate, from their length forecast given how far they have got.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import heapq
import math
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from turnout.routing.length import LengthForecast
from turnout.routing.rates import ServiceRates
from turnout.routing.signals import Signal

STRATEGIES = ("round_robin", "least_requests", "power_of_two", "least_work")
DEFAULT_STRATEGY = "least_work"

_PRIOR_OUTPUT_TOKENS = 256.0


@dataclass(slots=True)
class Flight:
    """One request in flight on an instance, as the gateway sees it."""

    prompt_tokens: int
    points: tuple[float, ...]  # forecast of its whole answer's length (equal-mass points)
    cap: int | None  # max_tokens
    started: float
    streamed: bool = True  # token progress is visible; otherwise it is estimated from time
    first_token_at: float | None = None
    generated: int = 0
    prefill_ahead: int = 0  # prefill tokens queued at start, its own included
    slot_free: bool = True  # it did not have to wait for a batch slot
    area_at_first: float = 0.0
    kv_area_at_first: float = 0.0

    def remaining(self, generated: float) -> float:
        """Expected tokens still to come, given `generated` so far.

        With heavy tails an answer that is already long is likely to go on: the expectation is
        over the forecast's points beyond what has been generated, not its overall mean.
        """
        above = [p for p in self.points if p > generated]
        if above:
            left = sum(above) / len(above) - generated
        elif len(self.points) == 1 and self.points[0] > 0:
            left = 1.0  # a known length, reached: it ends now
        else:
            left = 0.5 * generated + 1.0  # beyond every point: the tail goes on
        if self.cap is not None:
            left = min(left, self.cap - generated)
        return max(left, 1.0)


@dataclass(slots=True)
class InstanceState:
    """What the gateway knows about one instance: its requests, speed, health and reports."""

    name: str
    rates: ServiceRates = field(default_factory=ServiceRates)
    flights: dict[Hashable, Flight] = field(default_factory=dict)
    max_batch: int | None = None  # requests it runs at once; beyond that they queue inside it
    kv_tokens: int | None = None  # KV cache capacity; a request waits until its prompt fits
    healthy: bool = True
    signal: Signal | None = None
    area: float = 0.0  # ∫ batch size dt over the gateway's own requests
    kv_area: float = 0.0  # ∫ their tokens of context dt
    area_at: float = 0.0
    # Work other gateway replicas have in flight here (shared state), as `own_work` gives it.
    foreign: tuple[tuple[float, float, float], ...] = ()
    foreign_at: float = -math.inf

    def others(self, now: float, stale_after_s: float) -> tuple[tuple[float, float, float], ...]:
        """Other replicas' requests here, if their last report is recent enough to trust."""
        return self.foreign if now - self.foreign_at <= stale_after_s else ()

    def batch(self) -> int:
        n = len(self.flights)
        return n if self.max_batch is None else min(n, self.max_batch)

    def context_tokens(self) -> int:
        return sum(f.prompt_tokens + f.generated for f in self.flights.values())

    def advance(self, now: float) -> None:
        if now > self.area_at:
            self.area += self.batch() * (now - self.area_at)
            self.kv_area += self.context_tokens() * (now - self.area_at)
            self.area_at = now

    def fresh(self, now: float, stale_after_s: float) -> Signal | None:
        """The last report, if it is recent enough to trust."""
        s = self.signal
        return s if s is not None and now - s.at <= stale_after_s else None

    def load(self, now: float, stale_after_s: float) -> int:
        """Requests in the instance: ours, or what it reports if that is more (others' too)."""
        own = len(self.flights) + len(self.others(now, stale_after_s))
        s = self.fresh(now, stale_after_s)
        seen = s.in_system if s is not None else None
        return own if seen is None else max(own, seen)


@dataclass(frozen=True, slots=True)
class Ask:
    """The request being placed, as the balancer sees it."""

    prompt_tokens: int
    output: float = _PRIOR_OUTPUT_TOKENS  # expected answer length (the forecast's mean)
    points: tuple[float, ...] = ()  # the forecast's shape; () means just `output`
    cap: int | None = None
    prefix_key: str | None = None  # a long shared prompt prefix (e.g. the system prompt's hash)
    prefix_tokens: int = 0

    @classmethod
    def of(
        cls,
        prompt_tokens: int,
        forecast: LengthForecast,
        *,
        prefix_key: str | None = None,
        prefix_tokens: int = 0,
    ) -> Ask:
        return cls(
            prompt_tokens, forecast.mean, forecast.points, forecast.cap, prefix_key, prefix_tokens
        )


@dataclass(frozen=True, slots=True)
class Ranking:
    order: tuple[str, ...]  # preferred first; the rest are fallbacks
    rule: str
    scores: dict[str, float] = field(default_factory=dict)  # least_work: predicted seconds

    @property
    def chosen(self) -> str | None:
        return self.order[0] if self.order else None


# -- strategies: pure functions of the fleet state ------------------------------------------------


def _rotated(instances: Sequence[InstanceState], turn: int) -> list[InstanceState]:
    k = turn % len(instances) if instances else 0
    return [*instances[k:], *instances[:k]]


def round_robin(instances: Sequence[InstanceState], turn: int) -> list[str]:
    return [i.name for i in _rotated(instances, turn)]


def least_requests(
    instances: Sequence[InstanceState], turn: int, now: float, stale_after_s: float
) -> list[str]:
    """Fewest requests in the instance; ties go round in turn, so idle instances share."""
    ring = _rotated(instances, turn)
    return [i.name for i in sorted(ring, key=lambda i: i.load(now, stale_after_s))]


def power_of_two(
    instances: Sequence[InstanceState], rng: random.Random, now: float, stale_after_s: float
) -> list[str]:
    """The less loaded of two drawn at random; the rest follow by load, as fallbacks."""
    if len(instances) < 2:
        return [i.name for i in instances]
    a, b = rng.sample(range(len(instances)), 2)
    first, second = instances[a], instances[b]
    if second.load(now, stale_after_s) < first.load(now, stale_after_s):
        first, second = second, first
    rest = sorted(
        (i for k, i in enumerate(instances) if k not in (a, b)),
        key=lambda i: i.load(now, stale_after_s),
    )
    return [first.name, second.name, *(i.name for i in rest)]


def _progress(f: Flight, now: float, rates: ServiceRates, batch: int) -> tuple[float, bool]:
    """(tokens generated so far, prefill done) — counted when streamed, else guessed from time."""
    if f.streamed:
        return float(f.generated), f.first_token_at is not None
    decoding = now - f.started - f.prefill_ahead * rates.prefill_s_per_token
    if decoding < 0:
        return 0.0, False
    return decoding / rates.step_s(batch, batch * f.prompt_tokens), True


def own_work(inst: InstanceState, now: float) -> list[tuple[float, float, float]]:
    """This gateway's requests on the instance in the order they came, each as (prompt tokens
    still to prefill, tokens of context it holds, tokens it is expected to generate yet)."""
    rates = inst.rates
    n_own = len(inst.flights)
    queue: list[tuple[float, float, float]] = []
    for f in inst.flights.values():
        g, prefilled = _progress(f, now, rates, n_own)
        queue.append((0.0 if prefilled else f.prompt_tokens, f.prompt_tokens + g, f.remaining(g)))
    return queue


def _queue(
    inst: InstanceState, now: float, stale_after_s: float
) -> list[tuple[float, float, float]]:
    """Every request known to be on the instance: other replicas', then ours, then what the
    server reports beyond those (requests nobody here sent), at a typical length."""
    queue = [*inst.others(now, stale_after_s), *own_work(inst, now)]
    s = inst.fresh(now, stale_after_s)
    seen = s.in_system if s is not None else None
    if seen is not None and seen > len(queue):
        typical = inst.rates.output_tokens
        queue[:0] = [(0.0, typical, typical)] * (seen - len(queue))
    return queue


def _play(
    inst: InstanceState, queue: list[tuple[float, float, float]], target: int | None
) -> tuple[float, float]:
    """Play the instance forward with no further arrivals; returns (Σ completion times, the
    completion time of `queue[target]`). Requests are admitted in order while a batch slot
    and KV room for their context are free; each admission stalls decoding for its prefill;
    every step gives each running request a token; each leaves when its tokens are done."""
    rates = inst.rates
    step = rates.step_s
    prefill_per_token = rates.prefill_s_per_token
    max_batch = inst.max_batch or max(len(queue), 1)
    kv_cap = float(inst.kv_tokens) if inst.kv_tokens else math.inf
    clock = total = own = 0.0
    t = 0.0  # decode steps from now
    alive: list[tuple[float, int]] = []  # (step at which it finishes, index)
    held_less_t = 0.0  # Σ (context held − step it joined) over alive: context = this + B·t
    joined: dict[int, float] = {}
    nxt = 0
    while nxt < len(queue) or alive:
        while nxt < len(queue) and len(alive) < max_batch:
            prefill, held, left = queue[nxt]
            if alive and held_less_t + len(alive) * t + held > kv_cap:
                break  # no room in the KV cache until someone leaves
            clock += prefill * prefill_per_token
            heapq.heappush(alive, (t + left, nxt))
            joined[nxt] = held - t
            held_less_t += held - t
            nxt += 1
        end, i = heapq.heappop(alive)
        batch = len(alive) + 1
        # Context grows linearly through the segment: the midpoint's step time is exact.
        clock += (end - t) * step(batch, held_less_t + batch * (t + end) / 2)
        t = end
        held_less_t -= joined.pop(i)
        total += clock
        if i == target:
            own = clock
    return total, own


def _with(queue: list[tuple[float, float, float]], ask: Ask, cached_prefix_tokens: int) -> int:
    queue.append(
        (
            max(0.0, ask.prompt_tokens - cached_prefix_tokens),
            float(ask.prompt_tokens),
            max(ask.output, 1.0),
        )
    )
    return len(queue) - 1


def completion_s(
    inst: InstanceState,
    ask: Ask,
    now: float,
    stale_after_s: float = 10.0,
    cached_prefix_tokens: int = 0,
) -> float:
    """Predicted seconds until `ask` would finish on `inst`."""
    queue = _queue(inst, now, stale_after_s)
    target = _with(queue, ask, cached_prefix_tokens)
    return _play(inst, queue, target)[1]


def added_delay_s(
    inst: InstanceState,
    ask: Ask,
    now: float,
    stale_after_s: float = 10.0,
    cached_prefix_tokens: int = 0,
) -> float:
    """What placing `ask` on `inst` costs everyone there: its own predicted completion time
    plus how much it delays every request already in flight (they share its steps)."""
    queue = _queue(inst, now, stale_after_s)
    before = _play(inst, queue, None)[0]
    target = _with(queue, ask, cached_prefix_tokens)
    return _play(inst, queue, target)[0] - before


@functools.lru_cache(maxsize=64)
def _ring(names: tuple[str, ...], vnodes: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
    points = sorted((_hash(f"{n}#{v}"), n) for n in names for v in range(vnodes))
    return tuple(p for p, _ in points), tuple(n for _, n in points)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def affinity_owner(
    instances: Sequence[InstanceState],
    key: str,
    now: float,
    stale_after_s: float = 10.0,
    *,
    bound: float = 1.25,
    vnodes: int = 64,
) -> str | None:
    """Consistent hashing with bounded load: the first instance clockwise from the key's hash
    whose load stays within `bound` × the average, so a hot prefix spills over instead of
    piling onto one instance."""
    if not instances:
        return None
    loads = {i.name: i.load(now, stale_after_s) for i in instances}
    limit = math.ceil(bound * (sum(loads.values()) + 1) / len(loads))
    hashes, owners = _ring(tuple(sorted(loads)), vnodes)
    start = bisect.bisect(hashes, _hash(key))
    for j in range(len(hashes)):
        name = owners[(start + j) % len(hashes)]
        if loads[name] + 1 <= limit:
            return name
    return None


def least_work(
    instances: Sequence[InstanceState],
    ask: Ask,
    turn: int,
    now: float,
    stale_after_s: float = 10.0,
    *,
    affinity: bool = False,
) -> tuple[list[str], dict[str, float]]:
    """Least added delay first: the request's own predicted completion plus the delay it
    imposes on the requests already there. With affinity, the instance that owns the request's
    prefix (consistent hashing, bounded load) is credited with skipping the prefix's prefill."""
    owner = (
        affinity_owner(instances, ask.prefix_key, now, stale_after_s)
        if affinity and ask.prefix_key is not None and ask.prefix_tokens > 0
        else None
    )
    scores = {
        i.name: added_delay_s(
            i, ask, now, stale_after_s, ask.prefix_tokens if i.name == owner else 0
        )
        for i in instances
    }
    ring = _rotated(instances, turn)
    order = sorted((i.name for i in ring), key=lambda n: scores[n])  # stable: ties rotate
    return order, scores


def rank(
    strategy: str,
    instances: Sequence[InstanceState],
    ask: Ask,
    *,
    now: float,
    rng: random.Random,
    turn: int = 0,
    stale_after_s: float = 10.0,
    affinity: bool = False,
) -> Ranking:
    """Healthy instances in preference order under `strategy`; unhealthy ones are left out."""
    healthy = [i for i in instances if i.healthy]
    if not healthy:
        return Ranking((), "no healthy instance")
    scores: dict[str, float] = {}
    if strategy == "round_robin":
        order = round_robin(healthy, turn)
    elif strategy == "least_requests":
        order = least_requests(healthy, turn, now, stale_after_s)
    elif strategy == "power_of_two":
        order = power_of_two(healthy, rng, now, stale_after_s)
    elif strategy == "least_work":
        order, scores = least_work(healthy, ask, turn, now, stale_after_s, affinity=affinity)
    else:
        raise ValueError(f"unknown balancing strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    return Ranking(tuple(order), strategy, scores)


def pick(
    strategy: str,
    instances: Sequence[InstanceState],
    ask: Ask,
    *,
    now: float,
    rng: random.Random,
    turn: int = 0,
    stale_after_s: float = 10.0,
    affinity: bool = False,
) -> str | None:
    return rank(
        strategy,
        instances,
        ask,
        now=now,
        rng=rng,
        turn=turn,
        stale_after_s=stale_after_s,
        affinity=affinity,
    ).chosen
