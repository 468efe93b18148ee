"""Shadow traffic: a fraction of a model's requests also goes to a candidate, off the client's path.

The client gets the primary's answer and never waits for the shadow. A shadow is a Run of its own
(`migration.shadow_of` names the primary; the primary's `migration.shadow` names the shadow), made
of one attempt on the candidate, non-streaming, at low admission priority. Nothing acts on its
answer: tool calls it asks for are recorded, never executed or forwarded. Its cost counts against
the shadow budget, read back from the record at start-up; once spent, mirroring stops. In a
fleet (`state.url`) the budget is one for all replicas: `turnout.fleet.spend`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from turnout.backends.base import Operation
from turnout.config import ModelConfig
from turnout.config.schema import ShadowConfig
from turnout.fleet.loop import Loop
from turnout.fleet.spend import SharedSpend
from turnout.lifecycle.engine import Engine
from turnout.lifecycle.fleet import Fleet
from turnout.lifecycle.request import Request
from turnout.lifecycle.run import Run
from turnout.migrate.events import EventLog
from turnout.routing.admission import DEADLINE_HEADER, PRIORITY_HEADER

log = logging.getLogger("turnout.migrate")


@dataclass(slots=True)
class _Mirror:
    """One model's shadow: its candidate, what it has cost, what runs now."""

    model: ModelConfig  # the model as the shadow sees it: one attempt on the candidate
    config: ShadowConfig
    spent_usd: float = 0.0
    in_flight: int = 0
    stopped: bool = False
    shared: SharedSpend | None = None  # the fleet's spend, with `state.url`


class ShadowMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = Counter(
            "turnout_shadow_requests",
            "Shadow requests by terminal state",
            ["model", "deployment", "outcome"],
            registry=r,
        )
        self.skipped = Counter(
            "turnout_shadow_skipped",
            "Requests picked for mirroring but not mirrored: in_flight (cap reached), budget",
            ["model", "deployment", "reason"],
            registry=r,
        )
        self.cost = Counter(
            "turnout_shadow_cost_usd",
            "Cost of shadow requests",
            ["model", "deployment"],
            registry=r,
        )
        self.in_flight = Gauge(
            "turnout_shadow_in_flight", "Shadow requests running", ["model"], registry=r
        )
        self.budget_left = Gauge(
            "turnout_shadow_budget_left_usd",
            "What the shadow budget still allows",
            ["model", "deployment"],
            registry=r,
        )


def shadow_model(model: ModelConfig, cfg: ShadowConfig) -> ModelConfig:
    """One attempt on the candidate: no retries, re-asks or fallbacks spending the budget twice."""
    return dataclasses.replace(
        model,
        deployments=(cfg.deployment,),
        routing="ordered",
        lifecycle=dataclasses.replace(model.lifecycle, max_attempts=1),
        deadline_ms=None,
        latency_budget_ms=None,
        shadow=None,
        canary=None,
    )


def shadow_body(body: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(body)
    out["stream"] = False
    out.pop("stream_options", None)
    return out


def shadow_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's identity and conversation, at low priority and without its deadline."""
    out = {k: v for k, v in headers.items() if k.lower() not in (DEADLINE_HEADER, PRIORITY_HEADER)}
    out[PRIORITY_HEADER] = "low"
    return out


class Shadows:
    def __init__(
        self,
        models: Mapping[str, ModelConfig],
        fleet: Fleet,
        record: Callable[[Run], None],
        registry: CollectorRegistry,
        events: EventLog,
        new_id: Callable[[], str],
        rng: random.Random | None = None,
        *,
        redis: Any = None,
        sync_s: float = 0.1,
    ) -> None:
        """With `redis`, the budget is the fleet's: spend is added up there every `sync_s`."""
        self._mirrors = {
            name: _Mirror(shadow_model(m, m.shadow), m.shadow)
            for name, m in models.items()
            if m.shadow is not None
        }
        self._record = record
        self._engine = Engine(fleet, self._finished)
        self._events = events
        self._new_id = new_id
        self._rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()
        self.metrics = ShadowMetrics(registry)
        self._redis = redis
        self._sync_s = sync_s
        self._sync_loop = Loop(self._sync, "shadow-budget")
        self._syncing = False

    def __bool__(self) -> bool:
        return bool(self._mirrors)

    async def start(self) -> None:
        """Pick up what earlier runs of the gateway (of the fleet) spent."""
        for name, m in self._mirrors.items():
            m.spent_usd = self._events.shadow_spent(name, m.config.deployment)
            if self._redis is not None:
                m.shared = SharedSpend(self._redis, name, m.config.deployment)
                try:
                    await m.shared.seed(m.spent_usd)
                    m.spent_usd = m.shared.spent
                except Exception as exc:  # no shadows until Redis answers
                    log.warning("shadow of %s: the fleet's budget cannot be read (%s)", name, exc)
            # Spent before this start: the stop is recorded already, unless whoever spent it
            # last died first.
            self._check_budget(name, m, announce=not self._stop_recorded(name, m))
            self._show_budget(name, m)
        if any(m.shared is not None for m in self._mirrors.values()):
            self._syncing = True
            self._sync_loop.start()

    async def _sync(self) -> float:
        for name, m in self._mirrors.items():
            if m.shared is None or not await m.shared.sync():
                continue
            m.spent_usd = m.shared.spent
            self._check_budget(name, m, announce=True)
            self._show_budget(name, m)
        return self._sync_s

    async def close(self) -> None:
        if self._syncing:
            await self._sync_loop.stop()
            with contextlib.suppress(Exception):
                await self._sync()  # what finished here since the last sync
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def status(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "candidate": m.config.deployment,
                "fraction": m.config.fraction,
                "budget_usd": m.config.budget_usd,
                "spent_usd": round(m.spent_usd, 9),
                "in_flight": m.in_flight,
                "stopped": m.stopped,
            }
            for name, m in self._mirrors.items()
        }

    def mirror(
        self,
        primary: Run,
        model: ModelConfig,
        body: Mapping[str, Any],
        op: Operation,
        headers: Mapping[str, str],
    ) -> Run | None:
        """Maybe start a shadow of `primary`; returns it when one started. Never blocks."""
        m = self._mirrors.get(model.name)
        if m is None or self._rng.random() >= m.config.fraction:
            return None
        dep = m.config.deployment
        if m.stopped or (m.shared is not None and not m.shared.up):
            self.metrics.skipped.labels(model.name, dep, "budget").inc()
            return None
        if m.in_flight >= m.config.max_in_flight:
            self.metrics.skipped.labels(model.name, dep, "in_flight").inc()
            return None
        sb = shadow_body(body)
        shadow = Run(
            id=self._new_id(),
            model=model.name,
            operation=primary.operation,
            stream=False,
            request_body=sb,
        )
        shadow.migration = {"shadow_of": primary.id, "candidate": dep}
        primary.migration["shadow"] = shadow.id
        m.in_flight += 1
        self.metrics.in_flight.labels(model.name).inc()
        task = asyncio.create_task(self._run(m, shadow, sb, op, shadow_headers(headers)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return shadow

    async def _run(
        self, m: _Mirror, shadow: Run, body: dict[str, Any], op: Operation, headers: dict[str, str]
    ) -> None:
        try:
            reply = await self._engine.complete(
                shadow, m.model, Request.from_openai(body, op, headers)
            )
            shadow.http_status = reply.status
        except asyncio.CancelledError:
            pass  # the gateway is closing; the engine recorded `cancelled`
        except Exception:
            log.exception("shadow %s of %s failed inside turnout", shadow.id, m.model.name)
        finally:
            m.in_flight -= 1
            self.metrics.in_flight.labels(m.model.name).dec()

    def _finished(self, shadow: Run) -> None:
        name = shadow.model
        m = self._mirrors[name]
        dep = m.config.deployment
        outcome = shadow.outcome.value if shadow.outcome else "unfinished"
        self.metrics.requests.labels(name, dep, outcome).inc()
        if shadow.cost_usd:
            self.metrics.cost.labels(name, dep).inc(shadow.cost_usd)
        m.spent_usd += shadow.cost_usd
        if m.shared is not None:
            m.shared.add(shadow.cost_usd)  # judged against the budget at the next sync
        else:
            self._check_budget(name, m, announce=True)
        self._show_budget(name, m)
        self._record(shadow)

    def _check_budget(self, name: str, m: _Mirror, *, announce: bool) -> None:
        budget = m.config.budget_usd
        if m.stopped or budget is None or m.spent_usd < budget:
            return
        m.stopped = True
        dep = m.config.deployment
        log.warning(
            "shadow of model %s on %s stopped: spent $%.6f of its $%.6f budget",
            name,
            dep,
            m.spent_usd,
            budget,
        )
        if announce:  # in a fleet, every replica that sees it: the record keeps one
            self._events.append(
                name,
                "shadow",
                dep,
                "budget_spent",
                detail={"spent_usd": m.spent_usd, "budget_usd": budget},
                decision=f"shadow:{name}:{dep}:budget_spent:{budget!r}",
            )

    def _stop_recorded(self, name: str, m: _Mirror) -> bool:
        last = self._events.latest(name, "shadow", m.config.deployment)
        return (
            last is not None
            and last.kind == "budget_spent"
            and last.detail.get("budget_usd") == m.config.budget_usd
        )

    def _show_budget(self, name: str, m: _Mirror) -> None:
        if m.config.budget_usd is not None:
            left = max(0.0, m.config.budget_usd - m.spent_usd)
            self.metrics.budget_left.labels(name, m.config.deployment).set(left)
