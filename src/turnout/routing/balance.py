"""Balancing one model's traffic across its instances by the work they still have to do.

Strategies are pure functions of a fleet state (`InstanceState` per instance) and the request
(`Ask`). `LoadTracker` is the bookkeeping the gateway keeps that state with: a request starts,
streams tokens and ends; the tracker learns each instance's prefill and decode speed from those
events, and folds in what the servers themselves report (`signals.Signal`).

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
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from turnout.routing.length import LengthForecast
from turnout.routing.signals import Signal

STRATEGIES = ("round_robin", "least_requests", "power_of_two", "least_work")
DEFAULT_STRATEGY = "least_work"

# Priors until an instance has been observed: a mid-size model on one GPU.
_PRIOR_PREFILL_TPS = 8000.0
_PRIOR_STEP = (0.012, 0.0002, 0.00005)  # seconds: fixed, per request, per 1000 tokens of KV
_RIDGE = (5.0, 5.0 * 16**2, 5.0 * 16**2)  # pull toward the prior, in each coefficient's scale
_PRIOR_OUTPUT_TOKENS = 256.0


def _solve3(m: list[list[float]], v: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when singular."""
    a = [[*row, rhs] for row, rhs in zip(m, v, strict=True)]
    for col in range(3):
        piv = max(range(col, 3), key=lambda r: abs(a[r][col]))
        if abs(a[piv][col]) < 1e-15:
            return None
        a[col], a[piv] = a[piv], a[col]
        for r in range(col + 1, 3):
            f = a[r][col] / a[col][col]
            for c in range(col, 4):
                a[r][c] -= f * a[col][c]
    x = [0.0, 0.0, 0.0]
    for r in (2, 1, 0):
        x[r] = (a[r][3] - sum(a[r][c] * x[c] for c in range(r + 1, 3))) / a[r][r]
    return x


@dataclass(slots=True)
class ServiceRates:
    """An instance's measured speed: prefill tokens/s, and decode step time as a function of
    the batch — step = fixed + per_request × batch + per_kv × tokens of context in the batch.

    The step is fitted online by exponentially weighted least squares over finished requests
    (weighted by how many tokens each decoded), pulled toward the prior until data says
    otherwise; what it measures is the effective step, prefill stalls included.
    """

    forget: float = 0.97  # per observation: older requests fade
    prefill_s_per_token: float = 1 / _PRIOR_PREFILL_TPS
    prefill_seen: int = 0
    coef: tuple[float, float, float] = _PRIOR_STEP
    moments: list[list[float]] = field(default_factory=lambda: [[0.0] * 3 for _ in range(3)])
    targets: list[float] = field(default_factory=lambda: [0.0] * 3)
    decode_seen: int = 0
    output_tokens: float = _PRIOR_OUTPUT_TOKENS  # typical answer here, for requests it can't see
    fixed: Callable[[int, float], float] | None = None  # a known step function: the oracle's

    @property
    def prefill_tps(self) -> float:
        return 1 / self.prefill_s_per_token

    def observe_prefill(self, tokens: float, seconds: float) -> None:
        if tokens <= 0 or seconds <= 0:
            return
        sample = seconds / tokens
        if self.prefill_seen == 0:
            self.prefill_s_per_token = sample
        else:  # a prefill that also waited for room counts as at most 3× slow
            sample = min(sample, 3 * self.prefill_s_per_token)
            self.prefill_s_per_token += 0.1 * (sample - self.prefill_s_per_token)
        self.prefill_seen += 1

    def observe_decode(
        self, batch: float, kv_tokens: float, seconds_per_token: float, weight: float = 1.0
    ) -> None:
        """One request's decode: mean batch and KV while it decoded, and its time per token."""
        if batch <= 0 or seconds_per_token <= 0 or weight <= 0 or self.fixed is not None:
            return
        self.decode_seen += 1
        x = (1.0, batch, kv_tokens / 1000)
        m, v = self.moments, self.targets
        for i in range(3):
            v[i] = self.forget * v[i] + weight * x[i] * seconds_per_token
            for j in range(3):
                m[i][j] = self.forget * m[i][j] + weight * x[i] * x[j]
        ridged = [[m[i][j] + (_RIDGE[i] if i == j else 0.0) for j in range(3)] for i in range(3)]
        rhs = [v[i] + _RIDGE[i] * _PRIOR_STEP[i] for i in range(3)]
        sol = _solve3(ridged, rhs)
        if sol is not None:
            self.coef = (max(sol[0], 1e-5), max(sol[1], 0.0), max(sol[2], 0.0))

    def observe_output(self, tokens: int) -> None:
        self.output_tokens += 0.05 * (tokens - self.output_tokens)

    def step_s(self, batch: int, kv_tokens: float = 0.0) -> float:
        """Seconds per decode step with `batch` requests holding `kv_tokens` of context."""
        if self.fixed is not None:
            return self.fixed(batch, kv_tokens)
        a, b, c = self.coef
        return a + b * batch + c * kv_tokens / 1000


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
        own = len(self.flights)
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


def _queue(
    inst: InstanceState, now: float, stale_after_s: float
) -> list[tuple[float, float, float]]:
    """The instance's requests in the order they came, each as (prompt tokens still to
    prefill, tokens of context it holds, tokens it is expected to generate yet)."""
    rates = inst.rates
    n_own = len(inst.flights)
    queue: list[tuple[float, float, float]] = []
    for f in inst.flights.values():
        g, prefilled = _progress(f, now, rates, n_own)
        queue.append((0.0 if prefilled else f.prompt_tokens, f.prompt_tokens + g, f.remaining(g)))
    s = inst.fresh(now, stale_after_s)
    seen = s.in_system if s is not None else None
    if seen is not None and seen > n_own:  # requests it runs that we did not send
        typical = rates.output_tokens
        queue[:0] = [(0.0, typical, typical)] * (seen - n_own)
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


# -- bookkeeping: what the gateway updates as requests start, stream and end ----------------------


class LoadTracker:
    """The gateway's running account of each instance's in-flight work, and what it learned.

    Keys identify one attempt (a request id with its attempt number): a retry elsewhere is a new
    flight. Calls for keys it does not know (an instance removed meanwhile) are ignored.
    """

    def __init__(
        self,
        names: Iterable[str] = (),
        *,
        strategy: str = DEFAULT_STRATEGY,
        affinity: bool = False,
        stale_after_s: float = 10.0,
        max_batch: Mapping[str, int | None] | None = None,
        kv_tokens: Mapping[str, int | None] | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown balancing strategy {strategy!r}")
        self.strategy = strategy
        self.affinity = affinity
        self.stale_after_s = stale_after_s
        self.rng = rng or random.Random()
        self.clock = clock
        self.turn = 0
        self.instances: dict[str, InstanceState] = {}
        self._retired: dict[str, ServiceRates] = {}  # what was learned, kept while it is gone
        self._where: dict[Hashable, str] = {}
        for name in names:
            self.add(
                name, max_batch=(max_batch or {}).get(name), kv_tokens=(kv_tokens or {}).get(name)
            )

    # -- the fleet ---------------------------------------------------------------------------

    def add(
        self, name: str, *, max_batch: int | None = None, kv_tokens: int | None = None
    ) -> InstanceState:
        """An instance joins, or returns: it comes back with the speed it was learned to have."""
        if name in self.instances:
            return self.instances[name]
        rates = self._retired.pop(name, None) or ServiceRates()
        inst = InstanceState(
            name, rates, max_batch=max_batch, kv_tokens=kv_tokens, area_at=self.clock()
        )
        self.instances[name] = inst
        return inst

    def remove(self, name: str) -> None:
        """An instance is gone: its requests are forgotten, its learned speed kept."""
        inst = self.instances.pop(name, None)
        if inst is None:
            return
        self._retired[name] = inst.rates
        for key in inst.flights:
            self._where.pop(key, None)

    def set_healthy(self, name: str, healthy: bool) -> None:
        if name in self.instances:
            self.instances[name].healthy = healthy

    def apply(self, name: str, signal: Signal) -> None:
        """Fold in a scrape of the instance's own metrics."""
        inst = self.instances.get(name)
        if inst is None:
            return
        inst.signal = signal
        if signal.slots is not None:
            inst.max_batch = signal.slots

    # -- decisions ---------------------------------------------------------------------------

    def rank(
        self, ask: Ask, names: Iterable[str] | None = None, strategy: str | None = None
    ) -> Ranking:
        chosen = (
            list(self.instances.values())
            if names is None
            else [self.instances[n] for n in names if n in self.instances]
        )
        self.turn += 1
        return rank(
            strategy or self.strategy,
            chosen,
            ask,
            now=self.clock(),
            rng=self.rng,
            turn=self.turn,
            stale_after_s=self.stale_after_s,
            affinity=self.affinity,
        )

    def pick(
        self, ask: Ask, names: Iterable[str] | None = None, strategy: str | None = None
    ) -> str | None:
        return self.rank(ask, names, strategy).chosen

    # -- a request's life ----------------------------------------------------------------------

    def start(self, name: str, key: Hashable, ask: Ask, *, streamed: bool = True) -> None:
        """The attempt was sent to `name`."""
        inst = self.instances.get(name)
        if inst is None:
            return
        now = self.clock()
        inst.advance(now)
        queued = sum(f.prompt_tokens for f in inst.flights.values() if f.first_token_at is None)
        inst.flights[key] = Flight(
            prompt_tokens=ask.prompt_tokens,
            points=ask.points or (ask.output,),
            cap=ask.cap,
            started=now,
            streamed=streamed,
            prefill_ahead=queued + ask.prompt_tokens,
            slot_free=(inst.max_batch is None or len(inst.flights) < inst.max_batch)
            and (
                inst.kv_tokens is None
                or inst.context_tokens() + ask.prompt_tokens <= inst.kv_tokens
            ),
        )
        self._where[key] = name

    def _flight(self, key: Hashable) -> tuple[InstanceState, Flight] | None:
        name = self._where.get(key)
        inst = self.instances.get(name) if name is not None else None
        if inst is None or key not in inst.flights:
            return None
        return inst, inst.flights[key]

    def first_token(self, key: Hashable) -> None:
        """The first token arrived: its prefill is done (a whole answer counts as this too)."""
        found = self._flight(key)
        if found is None:
            return
        inst, f = found
        if f.first_token_at is not None:
            return
        now = self.clock()
        inst.advance(now)
        f.first_token_at = now
        f.generated = max(f.generated, 1)
        f.area_at_first = inst.area
        f.kv_area_at_first = inst.kv_area
        if f.slot_free:
            inst.rates.observe_prefill(f.prefill_ahead, now - f.started)

    def tokens(self, key: Hashable, n: int = 1) -> None:
        """`n` more tokens were streamed."""
        found = self._flight(key)
        if found is not None:
            if found[1].first_token_at is None:
                self.first_token(key)
                n -= 1
            found[1].generated += n

    def progress(self, key: Hashable, generated: int) -> None:
        """Set the tokens generated so far (for callers that count them elsewhere)."""
        found = self._flight(key)
        if found is not None:
            found[1].generated = generated

    def finish(self, key: Hashable, *, output_tokens: int | None = None, ok: bool = True) -> None:
        """The attempt ended. A successful one teaches the instance's decode speed."""
        name = self._where.pop(key, None)
        inst = self.instances.get(name) if name is not None else None
        if inst is None or key not in inst.flights:
            return
        now = self.clock()
        inst.advance(now)
        f = inst.flights.pop(key)
        if not ok or not output_tokens:
            return
        inst.rates.observe_output(output_tokens)
        if f.first_token_at is None or not f.streamed:
            return  # a whole answer at once: no split between prefill and decode to learn from
        span = now - f.first_token_at
        if output_tokens > 1 and span > 0:
            inst.rates.observe_decode(
                (inst.area - f.area_at_first) / span,
                (inst.kv_area - f.kv_area_at_first) / span,
                span / (output_tokens - 1),
                weight=min(output_tokens - 1, 256) / 256,  # short answers time noisily
            )
