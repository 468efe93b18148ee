"""Intent signals on the request path, as a layer around the engine.

On the way in: the conversation's hashes, the scan's signal, the answer it is about, and (when the
words leave it open) the semantic check started in its worker. On the way out: the signal in the
record (`attrs.intent`), `x-turnout-intent`, the span and `turnout_intent_signals_total`. With
`on_rephrase: escalate`, a rephrase or correction goes to the deployment after the one that missed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from turnout.backends.base import Operation
from turnout.config import ModelConfig
from turnout.intent.attribution import Answers, Origin, is_regenerate, origin_of
from turnout.intent.conversation import prefix_hash, prompt_fingerprint, turns_of
from turnout.intent.semantic import Embeddings, available
from turnout.intent.signals import MISSES, Scan, Signal, decide_rephrase, scan
from turnout.layers import Handler, Layer
from turnout.lifecycle.engine import Reply, StreamHead
from turnout.lifecycle.request import Request
from turnout.lifecycle.run import Run
from turnout.lifecycle.states import State
from turnout.migrate.traffic import MigrationLayer

if TYPE_CHECKING:
    from turnout.gateway import Gateway

HEADER = "x-turnout-intent"
_ANSWERED = frozenset({State.COMPLETED, State.TRUNCATED})
_ESCALATE_ON = frozenset({Signal.REPHRASE, Signal.CORRECTION})


@dataclass(slots=True)
class Detection:
    """One request's signal, settled once the semantic check (if any) is in."""

    run: Run
    scan: Scan
    record: dict[str, Any]  # run.attrs["intent"], filled in as the decision settles
    missed: Origin | None
    rerecord: Callable[[Run], None]
    pending: asyncio.Future[float | None] | None = None
    counted: bool = False

    @property
    def signal(self) -> Signal | None:
        s = self.record.get("signals")
        return Signal(s[0]) if s else None

    def apply(self, semantic: float | None) -> None:
        s = self.scan
        self.pending = None
        self.record["semantic"] = None if semantic is None else round(semantic, 4)
        if decide_rephrase(s.lexical, s.cue, semantic):
            self.record["signals"] = [Signal.REPHRASE.value]
        if semantic is None:
            self.record["semantic_skipped"] = True
        if self.run.ended is not None:
            # Recorded before the check was in: the record is written again, whole (by id).
            self.rerecord(self.run)


class IntentLayer(Layer):
    def __init__(self, inner: Handler, gateway: Gateway) -> None:
        super().__init__(inner)
        self.models = gateway.config.models
        self.metrics = gateway.metrics
        self.rerecord = gateway.writer.submit
        self.answers = Answers()
        wanted = any(m.intent.detect and m.intent.semantic for m in self.models.values())
        self.embeddings = Embeddings() if wanted and available() else None
        # A running canary counts the misses of its arms' answers (built before this layer).
        self.canaries = next(
            (x.canaries for x in gateway.layers if isinstance(x, MigrationLayer)), None
        )

    @classmethod
    def for_gateway(cls, inner: Handler, gateway: Gateway) -> IntentLayer | None:
        detect = any(m.intent.detect for m in gateway.config.models.values())
        return cls(inner, gateway) if detect else None

    async def close(self) -> None:
        if self.embeddings is not None:
            self.embeddings.close()

    def observe(self, run: Run) -> None:
        """An answered request becomes what later signals are attributed to."""
        prefix = run.attrs.get("conversation_prefix")
        if not isinstance(prefix, str) or run.state not in _ANSWERED:
            return
        model = self.models.get(run.model)
        first = model.deployments[0] if model is not None else None
        self.answers.add(prefix, origin_of(run, run.attrs.get("prompt"), first))

    # -- the request path ----------------------------------------------------------------------

    def begin(self, run: Run, model: ModelConfig, request: Request) -> Detection | None:
        """The scan, on the event loop; starts the semantic check when the words leave it open."""
        settings = model.intent
        if not settings.detect or request.operation is not Operation.CHAT:
            return None
        turns = turns_of(request.body)
        if not turns:
            return None
        prefix = prefix_hash(turns)
        run.attrs["conversation_prefix"] = prefix
        prompt = prompt_fingerprint(turns)
        if prompt is not None:
            run.attrs["prompt"] = prompt
        before = self.answers.get(prefix)
        resent = is_regenerate(before, run.key_id, run.started, settings.regenerate_window_s)
        semantic = self.embeddings is not None and settings.semantic
        s = scan(turns, resent=resent, semantic=semantic)
        missed = before if resent else None
        record: dict[str, Any] = {"signals": [s.signal.value] if s.signal else []}
        if s.answer_at is not None:
            answered = prefix_hash(turns[: s.answer_at])
            record["answer_prefix"] = answered
            missed = self.answers.get(answered)
            record["lexical"] = round(s.lexical, 4)
            if s.new_question:
                record["new_question"] = True
        if missed is not None:
            record["missed"] = missed.as_dict()
        d = Detection(run, s, record, missed, self.rerecord)
        if s.undecided is not None and self.embeddings is not None:
            d.pending = self.embeddings.similarity(*s.undecided)
            if d.pending is None:
                d.apply(None)  # the worker is saturated: the words decide
            else:
                d.pending.add_done_callback(lambda f: _settled(d, f))
        if s.answer_at is not None or s.signal is not None:
            run.attrs["intent"] = record
        return d

    async def settle(self, d: Detection, wait_s: float) -> None:
        """Wait (at most `wait_s`) for a semantic check still running; else the words decide."""
        if d.pending is not None:
            try:
                await asyncio.wait_for(asyncio.shield(d.pending), wait_s)
            except TimeoutError:
                d.apply(None)

    def escalated(self, run: Run, model: ModelConfig, d: Detection) -> ModelConfig:
        """The model with its order starting after the deployment that missed, if there is one."""
        if model.intent.on_rephrase != "escalate" or d.signal not in _ESCALATE_ON:
            return model
        order = model.deployments
        missed = d.missed.deployment if d.missed is not None else None
        at = order.index(missed) if missed in order else 0
        if at + 1 >= len(order):
            return model
        d.record["escalated_from"] = order[at]
        d.record["escalated_to"] = order[at + 1]
        return dataclasses.replace(model, deployments=order[at + 1 :])

    def label(self, run: Run, d: Detection | None, headers: dict[str, str]) -> None:
        signal = d.signal if d is not None else None
        headers[HEADER] = signal.value if signal is not None else ""
        if d is None:
            return
        if "escalated_to" in d.record:
            extra = f"intent={signal}; from={d.record['escalated_from']}"
            route = headers.get("x-turnout-route")
            headers["x-turnout-route"] = f"{route}; {extra}" if route else extra
        if signal is not None and not d.counted:
            d.counted = True
            self.metrics.intent_signals.labels(self.metrics.model(run.model), signal.value).inc()
            if signal in MISSES and d.missed is not None and self.canaries is not None:
                self.canaries.miss(d.missed.model, d.missed.request_id)

    async def complete(self, run: Run, model: ModelConfig, request: Request) -> Reply:
        d = self.begin(run, model, request)
        if d is None:
            reply = await self.inner.complete(run, model, request)
            self.label(run, None, reply.headers)
            return reply
        wait_s = model.intent.semantic_wait_ms / 1000
        if model.intent.on_rephrase == "escalate":
            await self.settle(d, wait_s)  # where to send it depends on the answer
        reply = await self.inner.complete(run, self.escalated(run, model, d), request)
        await self.settle(d, wait_s)
        self.label(run, d, reply.headers)
        return reply

    async def stream(
        self, run: Run, model: ModelConfig, request: Request
    ) -> AsyncIterator[Reply | StreamHead | bytes]:
        d = self.begin(run, model, request)
        wait_s = model.intent.semantic_wait_ms / 1000
        if d is not None and model.intent.on_rephrase == "escalate":
            await self.settle(d, wait_s)
        placed = model if d is None else self.escalated(run, model, d)
        async for item in self.inner.stream(run, placed, request):
            if isinstance(item, Reply | StreamHead):
                if d is not None:
                    await self.settle(d, wait_s)
                self.label(run, d, item.headers)
            yield item


def _settled(d: Detection, future: asyncio.Future[float | None]) -> None:
    """Applied as soon as the worker answers, usually long before the upstream does."""
    if d.pending is not future:
        return
    if future.cancelled() or future.exception() is not None:
        d.apply(None)
    else:
        d.apply(future.result())
