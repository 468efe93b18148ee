"""The gateway's running account of in-flight work per instance, and what it learned of them."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable, Iterable, Mapping

from turnout.routing.balance import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    Ask,
    Flight,
    InstanceState,
    Ranking,
    rank,
)
from turnout.routing.rates import ServiceRates
from turnout.routing.signals import Signal

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
