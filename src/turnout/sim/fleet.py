"""The discrete-event fleet simulator: simulated instances with the gateway's balancer in front.

The balancer is the gateway's own code: a `LoadTracker` kept up to date with the same calls the
gateway makes (start, first token, token progress, finish), a `LengthPredictor` that learns
from finished requests, and `balance.rank` deciding. Only the instances are simulated.

Inside an instance, time moves per event, not per token: between two events the batch is
fixed, so every running request gains tokens at the same rate, 1 / step(batch). A virtual
token clock V counts those tokens; a request that joined the batch at V₀ with n tokens to go
finishes when V reaches V₀ + n, and the next completion is the heap's minimum.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from turnout.routing.balance import STRATEGIES, Ask
from turnout.routing.length import PREDICTORS, LengthPredictor
from turnout.routing.rates import ServiceRates
from turnout.routing.tracker import LoadTracker
from turnout.sim.timing import Profile
from turnout.sim.workload import SimRequest

SIM_STRATEGIES = (*STRATEGIES, "oracle")
_IDLE, _PREFILL, _DECODE = 0, 1, 2


class SimInstance:
    """One continuous-batching inference instance: prefill first, KV cache bounded."""

    def __init__(self, name: str, profile: Profile, cache_size: int, sim: Simulation) -> None:
        self.name = name
        self.profile = profile
        self.sim = sim
        self.cache_size = cache_size
        self.cache: OrderedDict[str, None] = OrderedDict()  # prefixes whose KV it keeps
        self.v = 0.0  # decode tokens each running request has gained since the start
        self.v_at = 0.0
        self.mode = _IDLE
        self.running: list[tuple[float, int, SimRequest]] = []  # (V at finish, id, request)
        self.joined: dict[int, tuple[float, int, int]] = {}  # id → (V, generated, admission no.)
        self.kv_less_v = 0.0  # Σ (context held at joining − V at joining): KV = this + B·V
        self.kv_reserved = 0  # context of admitted requests still waiting for their prefill
        self.resume: dict[int, int] = {}  # preempted request → tokens it had generated
        self.prefilling: deque[SimRequest] = deque()  # admitted, prompt not yet processed
        self.waiting: deque[SimRequest] = deque()  # no batch slot or KV room yet
        self.current: SimRequest | None = None
        self.admitted = 0
        self.preemptions = 0
        self.version = 0
        self.busy_s = 0.0
        self.busy_since = 0.0

    def slots_used(self) -> int:
        return len(self.running) + len(self.prefilling) + (self.current is not None)

    def kv(self) -> float:
        return self.kv_less_v + len(self.running) * self.v + self.kv_reserved

    def _step(self) -> float:
        return self.profile.step_s(len(self.running), self.kv())

    def sync(self, now: float) -> None:
        """Advance the token clock to `now`. Context grows by one token per request per step,
        so the step time grows linearly in V and the clock solves a quadratic."""
        dt = now - self.v_at
        self.v_at = now
        if self.mode != _DECODE or not self.running or dt <= 0:
            return
        s0 = self._step()
        growth = self.profile.step_per_kv_s * len(self.running)  # d(step)/dV
        if growth * dt < 1e-9 * s0:
            self.v += dt / s0
        else:
            self.v += (math.sqrt(s0 * s0 + 2 * growth * dt) - s0) / growth

    def _time_to(self, v: float) -> float:
        d = max(0.0, v - self.v)
        growth = self.profile.step_per_kv_s * len(self.running)
        return d * self._step() + growth * d * d / 2

    def generated(self, request_id: int) -> int:
        v0, g0, _ = self.joined[request_id]
        return g0 + int(self.v - v0)

    def arrive(self, req: SimRequest, now: float) -> None:
        self.sync(now)
        self.waiting.append(req)
        self._admit()
        if self.mode != _PREFILL:  # a prefill pass is never interrupted
            self._next(now)

    def _admit(self) -> None:
        """Waiting requests in order, while a batch slot and KV room for the prompt are free."""
        cap = self.profile.kv_tokens
        while self.waiting and self.slots_used() < self.profile.max_batch:
            req = self.waiting[0]
            need = req.prompt_tokens + self.resume.get(req.id, 0)
            if self.slots_used() and self.kv() + need > cap:
                return
            self.waiting.popleft()
            self.kv_reserved += need
            self.prefilling.append(req)

    def on_event(self, now: float) -> None:
        self.sync(now)
        if self.mode == _PREFILL:
            req = self.current
            assert req is not None
            self.current = None
            self._prefilled(req, now)
        elif self.mode == _DECODE:
            finished = False
            while self.running and self.running[0][0] <= self.v + 1e-6:
                _, rid, req = heapq.heappop(self.running)
                self._leave(rid, req)
                self.sim.completed(req, now)
                finished = True
            if finished:
                self._admit()
            elif self.kv() >= self.profile.kv_tokens - 1e-6 and len(self.running) > 1:
                self._preempt()
        self._next(now)

    def _prefilled(self, req: SimRequest, now: float) -> None:
        before = self.resume.pop(req.id, 0)
        self.kv_reserved -= req.prompt_tokens + before
        if before == 0:
            self.sim.first_token(req, now)
        generated = before + 1  # a prefill pass yields the next token
        if generated >= req.output_tokens:
            self.sim.completed(req, now)
            self._admit()
            return
        self.admitted += 1
        self.joined[req.id] = (self.v, generated, self.admitted)
        self.kv_less_v += req.prompt_tokens + generated - self.v
        heapq.heappush(self.running, (self.v + req.output_tokens - generated, req.id, req))

    def _leave(self, rid: int, req: SimRequest) -> None:
        v0, g0, _ = self.joined.pop(rid)
        self.kv_less_v -= req.prompt_tokens + g0 - v0

    def _preempt(self) -> None:
        """The cache is full: the newest request gives its KV back and waits to be recomputed."""
        rid = max(self.joined, key=lambda r: self.joined[r][2])
        k = next(k for k, e in enumerate(self.running) if e[1] == rid)
        req = self.running.pop(k)[2]
        heapq.heapify(self.running)
        self.resume[rid] = self.generated(rid)
        self._leave(rid, req)
        self.waiting.appendleft(req)
        self.preemptions += 1

    def _prompt_cost(self, req: SimRequest) -> int:
        """Tokens to prefill: a cached prefix is skipped; a preempted request recomputes all."""
        if req.id in self.resume:
            return req.prompt_tokens + self.resume[req.id]
        key = req.prefix_key
        if key is None or self.cache_size <= 0:
            return req.prompt_tokens
        if key in self.cache:
            self.cache.move_to_end(key)
            req.prefix_hit = True
            return req.prompt_tokens - req.prefix_tokens
        self.cache[key] = None
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return req.prompt_tokens

    def _next(self, now: float) -> None:
        """Start what comes next — a prefill pass, else decode until the next completion or
        until the KV cache is full."""
        self.version += 1
        was_idle = self.mode == _IDLE
        if self.prefilling:
            req = self.current = self.prefilling.popleft()
            self.mode = _PREFILL
            at = now + self.profile.prefill_s(self._prompt_cost(req))
        elif self.running:
            self.mode = _DECODE
            target = self.running[0][0]
            batch = len(self.running)
            if batch > 1:
                full = (self.profile.kv_tokens - self.kv_less_v - self.kv_reserved) / batch
                target = min(target, max(full, self.v))
            at = now + self._time_to(target)
        else:
            if not was_idle:
                self.busy_s += now - self.busy_since
            self.mode = _IDLE
            return
        if was_idle:
            self.busy_since = now
        self.sim.schedule(at, self, self.version)


@dataclass(slots=True)
class SimConfig:
    profiles: Sequence[Profile]  # one per instance
    strategy: str = "least_work"
    affinity: bool = False
    predictor: str = "family"  # family | max_tokens | global_mean (oracle: the truth)
    prefix_cache: int = 16  # prefixes each instance keeps; 0 turns prefix caching off
    seed: int = 0
    warmup: float = 0.1  # leading share of requests left out of the statistics
    learn_rates: bool = True  # False: the balancer is told each instance's true speed


@dataclass(slots=True)
class SimResult:
    config: SimConfig
    requests: list[SimRequest]  # measured ones (warm-up excluded), completed
    all_requests: list[SimRequest]
    duration_s: float
    in_system_area: float  # ∫ requests in the fleet dt, over the whole run
    utilisation: dict[str, float]
    predictor_errors: dict[str, float] = field(default_factory=dict)
    shed: int = 0  # the simulator has no admission control: nothing is shed or rejected
    rejected: int = 0


class Simulation:
    def __init__(self, config: SimConfig) -> None:
        if config.strategy not in SIM_STRATEGIES:
            raise ValueError(
                f"unknown strategy {config.strategy!r}; one of {', '.join(SIM_STRATEGIES)}"
            )
        self.config = config
        self.now = 0.0
        self._events: list[tuple[float, int, Any, Any]] = []
        self._seq = 0
        self.instances = [
            SimInstance(f"i{k}", p, config.prefix_cache, self)
            for k, p in enumerate(config.profiles)
        ]
        oracle = config.strategy == "oracle"
        self.tracker = LoadTracker(
            [i.name for i in self.instances],
            strategy="least_work" if oracle else config.strategy,
            affinity=config.affinity,
            max_batch={i.name: i.profile.max_batch for i in self.instances},
            kv_tokens={i.name: i.profile.kv_tokens for i in self.instances},
            rng=random.Random(config.seed),
            clock=lambda: self.now,
        )
        if not config.learn_rates:
            for inst in self.instances:
                p = inst.profile
                self.tracker.instances[inst.name].rates = ServiceRates(
                    prefill_s_per_token=1 / p.prefill_tps, fixed=p.step_s
                )
        self.oracle = oracle
        self.predictor: LengthPredictor = PREDICTORS[config.predictor]()
        self.by_name = {i.name: i for i in self.instances}
        self.in_system = 0
        self.area = 0.0
        self._area_at = 0.0
        self._sync_progress = config.strategy in ("least_work", "oracle")

    def schedule(self, at: float, inst: SimInstance, version: int) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, self._seq, inst, version))

    def _count(self, delta: int) -> None:
        self.area += self.in_system * (self.now - self._area_at)
        self._area_at = self.now
        self.in_system += delta

    def _ask(self, req: SimRequest) -> Ask:
        if self.oracle:
            n = float(req.output_tokens)
            return Ask(req.prompt_tokens, n, (n,), None, req.prefix_key, req.prefix_tokens)
        forecast = self.predictor.predict(req.features)
        return Ask.of(
            req.prompt_tokens, forecast, prefix_key=req.prefix_key, prefix_tokens=req.prefix_tokens
        )

    def _progress(self) -> None:
        """What the gateway sees of streams: each running request's tokens so far."""
        for inst in self.instances:
            inst.sync(self.now)
            flights = self.tracker.instances[inst.name].flights
            for rid in inst.joined:
                f = flights.get(rid)
                if f is not None:
                    f.generated = inst.generated(rid)

    def dispatch(self, req: SimRequest) -> None:
        self._count(+1)
        ask = self._ask(req)
        if self._sync_progress:
            self._progress()
        name = self.tracker.pick(ask)
        assert name is not None
        req.instance = name
        self.tracker.start(name, req.id, ask)
        self.by_name[name].arrive(req, self.now)

    def first_token(self, req: SimRequest, now: float) -> None:
        req.first_token = now
        self.tracker.first_token(req.id)

    def completed(self, req: SimRequest, now: float) -> None:
        req.end = now
        self._count(-1)
        self.tracker.finish(req.id, output_tokens=req.output_tokens)
        self.predictor.observe(req.features, req.output_tokens)

    def run(
        self, requests: Sequence[SimRequest], progress: Callable[[int], None] | None = None
    ) -> SimResult:
        """Every request arrives, is placed and runs to completion."""
        pending = deque(sorted(requests, key=lambda r: r.arrival))
        events = self._events
        done = 0
        while pending or events:
            if pending and (not events or pending[0].arrival <= events[0][0]):
                req = pending.popleft()
                self.now = req.arrival
                self.dispatch(req)
                done += 1
                if progress is not None and done % 1000 == 0:
                    progress(done)
                continue
            at, _, inst, version = heapq.heappop(events)
            if version != inst.version:
                continue  # superseded: the instance changed course since
            self.now = at
            inst.on_event(at)
        self._count(0)
        for inst in self.instances:
            if inst.mode != _IDLE:
                inst.busy_s += self.now - inst.busy_since
        ordered = sorted(requests, key=lambda r: r.arrival)
        skip = int(len(ordered) * self.config.warmup)
        errors = getattr(self.predictor, "errors", {})
        return SimResult(
            config=self.config,
            requests=ordered[skip:],
            all_requests=ordered,
            duration_s=self.now,
            in_system_area=self.area,
            utilisation={i.name: i.busy_s / self.now if self.now else 0.0 for i in self.instances},
            predictor_errors=next(iter(errors.values())).summary() if errors else {},
        )


def simulate(config: SimConfig, requests: Sequence[SimRequest]) -> SimResult:
    """One run on fresh copies of the requests (so several strategies can share a workload)."""
    fresh = [
        SimRequest(
            r.id,
            r.arrival,
            r.prompt_tokens,
            r.output_tokens,
            r.features,
            r.prefix_key,
            r.prefix_tokens,
        )
        for r in requests
    ]
    return Simulation(config).run(fresh)
