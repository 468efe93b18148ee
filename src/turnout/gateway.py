"""The composition root: backends, breakers, the engine, the record and telemetry for one config."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from turnout.auth.bind import auth_mode
from turnout.auth.guard import Guard
from turnout.backends.base import Backend, Operation
from turnout.backends.openai_http import OpenAIHTTPBackend
from turnout.config import Config, DeploymentConfig, ModelConfig
from turnout.fleet.breakers import SharedBreakers
from turnout.fleet.leader import leadership_for
from turnout.intent.feedback import FeedbackDesk
from turnout.intent.layer import IntentLayer
from turnout.layers import Handler, Layer
from turnout.lifecycle.engine import Engine
from turnout.lifecycle.fleet import Fleet
from turnout.lifecycle.policy import Breaker
from turnout.lifecycle.run import Run
from turnout.migrate.traffic import MigrationLayer
from turnout.migrate.traffic import candidates as migration_candidates
from turnout.privacy.findings import summary
from turnout.privacy.scanner import Scanner
from turnout.routing.admission import Gate
from turnout.routing.balancer import Balancer, log_ratio
from turnout.routing.estimates import Estimates
from turnout.routing.router import Router, StickyConversations
from turnout.routing.shared import SharedGate, SharedState
from turnout.store.errors import StoreError
from turnout.store.query import recent_attempts
from turnout.store.writer import RecordWriter
from turnout.telemetry.content import ContentCapture
from turnout.telemetry.metrics import Metrics
from turnout.telemetry.tracing import Tracer

log = logging.getLogger("turnout")

# `make(inner, gateway)`: a layer around `inner`, or None where its capability is not configured.
LayerFactory = Callable[[Handler, "Gateway"], Layer | None]
# turnout's own layers, innermost first.
LAYERS: tuple[LayerFactory, ...] = (MigrationLayer.for_gateway, IntentLayer.for_gateway)


def make_backend(dep: DeploymentConfig) -> Backend:
    if dep.kind == "embedded":
        from turnout.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(
            dep.name,
            dep.model,
            max_concurrency=dep.max_concurrency or 1,
            max_queue=dep.max_queue,
            n_ctx=dep.n_ctx,
        )
    assert dep.base_url is not None
    if dep.kind == "anthropic":
        from turnout.backends.anthropic_http import AnthropicHTTPBackend

        return AnthropicHTTPBackend(
            dep.name,
            dep.base_url,
            dep.model,
            api_key_env=dep.api_key_env,
            version=dep.anthropic_version,
            timeouts=dep.timeouts,
        )
    if dep.api == "responses":
        from turnout.backends.responses_http import ResponsesHTTPBackend

        return ResponsesHTTPBackend(
            dep.name, dep.base_url, dep.model, api_key_env=dep.api_key_env, timeouts=dep.timeouts
        )
    return OpenAIHTTPBackend(
        dep.name, dep.base_url, dep.model, api_key_env=dep.api_key_env, timeouts=dep.timeouts
    )


def new_request_id() -> str:
    """Sortable by time: milliseconds, then randomness."""
    return f"{int(time.time() * 1000):012x}{os.urandom(6).hex()}"


class Gateway:
    def __init__(
        self,
        config: Config,
        *,
        rng: random.Random | None = None,
        wrap_backend: Callable[[str, Backend], Backend] | None = None,
        layers: Sequence[LayerFactory] = (),
    ) -> None:
        """`wrap_backend(name, backend)` may put a layer around each backend (record, replay, …);
        `layers` go around the engine, outside turnout's own."""
        self.config = config
        self.metrics = Metrics(config.models, config.deployments)
        self.writer = RecordWriter.for_store(config.store)
        # Raises UnsafeBind before anything starts: no keys on a non-loopback bind.
        self.auth_mode = auth_mode(config.auth, config.server.host)
        self.guard = Guard(
            config.auth, self.auth_mode, config.store.url, self.metrics, config.state.url
        )
        used = {d for m in config.models.values() for d in m.deployments}
        used |= migration_candidates(config.models)
        used |= {t.deployment for t in config.fingerprint.targets}
        self.backends: dict[str, Backend] = {
            name: make_backend(dep) for name, dep in config.deployments.items() if name in used
        }
        if wrap_backend is not None:
            self.backends = {name: wrap_backend(name, b) for name, b in self.backends.items()}
        self.breakers = {name: Breaker(dep.cooldown) for name, dep in config.deployments.items()}
        self.scanner = self._make_scanner(config)
        self.estimates = Estimates(config.deployments)
        self.balancer = self._make_balancer(config, rng)
        self.router = Router(
            config.deployments,
            self.breakers,
            self.estimates,
            StickyConversations(config.privacy.sticky_conversations),
            scan=None if self.scanner is None else self._scan,
            balancer=self.balancer,
        )
        self.shared = (
            SharedState(config.state, self.metrics) if config.state.url is not None else None
        )
        self.fleet = Fleet(
            config.deployments,
            self.backends,
            self.breakers,
            rng or random.Random(),
            self.router,
            self.scanner,
            gates={
                name: Gate(dep.max_concurrency, dep.max_queue)
                if self.shared is None
                else SharedGate(dep.max_concurrency, dep.max_queue, name, self.shared)
                for name, dep in config.deployments.items()
                if dep.max_concurrency is not None
            },
            tenants=config.tenants,
        )
        # Who decides for the fleet: an elected replica with `state.url`, else this gateway.
        self.leadership = leadership_for(config.state, self.metrics.registry, config.store.url)
        self.shared_breakers: SharedBreakers | None = None
        self.writer.may_prune = lambda: self.leadership.leader
        self.layers: list[Layer] = []
        self.engine: Handler = Engine(self.fleet, self._finished)
        for make in (*LAYERS, *layers):
            layer = make(self.engine, self)
            if layer is not None:
                self.layers.append(layer)
                self.engine = layer
        self.tracer: Tracer | None = None
        self.intent = next((x for x in self.layers if isinstance(x, IntentLayer)), None)
        self.feedback = FeedbackDesk(config.store.url, recent_key=self._recent_key)
        self.started = False
        self.fingerprint_watch: Any = None
        self._probes: list[asyncio.Task[None]] = []

    def _recent_key(self, request_id: str) -> tuple[bool, str | None]:
        origin = self.intent.answers.by_id(request_id) if self.intent is not None else None
        return (False, None) if origin is None else (True, origin.key_id)

    @staticmethod
    def _make_scanner(config: Config) -> Scanner | None:
        if all(m.privacy == "off" for m in config.models.values()):
            return None
        p = config.privacy
        return Scanner(
            custom_patterns=p.patterns, terms=list(p.terms), use_presidio=p.presidio, memo=256
        )

    def _make_balancer(self, config: Config, rng: random.Random | None) -> Balancer | None:
        balanced = [m for m in config.models.values() if m.routing == "balanced"]
        names = {d for m in balanced for d in m.deployments}
        if not names:
            return None
        m = self.metrics

        def on_prediction(route: str, predicted: float, actual: int) -> None:
            m.length_error.labels(route).observe(log_ratio(predicted, actual))
            m.length_abs_error.labels(route).observe(abs(predicted - actual))

        return Balancer(
            config.deployments,
            sorted(names),
            rng=random.Random(rng.random()) if rng is not None else None,
            on_prediction=on_prediction,
            on_scrape_error=lambda name: m.scrape_errors.labels(name).inc(),
        )

    def _scan(self, body: dict[str, Any]) -> dict[str, int]:
        assert self.scanner is not None
        return summary(self.scanner.scan_request(body))

    @property
    def models(self) -> dict[str, ModelConfig]:
        return self.config.models

    async def start(self) -> None:
        t = self.config.telemetry
        content = ContentCapture.maybe(
            t.capture_content, self.config.store.record_bodies, self.scanner
        )
        self.tracer = self.fleet.tracer = Tracer.for_config(t, self.config.deployments, content)
        recovery = self.writer.open()
        (log.warning if recovery.unclean else log.info)(recovery.describe(self.writer.path))
        self._warm_estimates()
        await self.guard.start()
        for backend in self.backends.values():
            await backend.start()
        await self.leadership.start()
        if self.leadership.redis is not None:  # a fleet: a breaker opened anywhere rests everywhere
            self.shared_breakers = SharedBreakers(self.breakers, self.leadership.redis)
            await self.shared_breakers.start()
        for layer in self.layers:
            await layer.start()
        self._probes = [
            asyncio.create_task(self._probe_rtt(name, backend, dep.rtt_probe_s))
            for name, backend in self.backends.items()
            if (dep := self.config.deployments[name]).rtt_probe_s > 0
            and hasattr(backend, "probe_rtt")
        ]
        if self.shared is not None:
            await self.shared.start(self.balancer)
        if self.balancer is not None:
            self._probes += [
                asyncio.create_task(
                    self.balancer.scrape_forever(name, url, self.config.deployments[name].scrape_s)
                )
                for name, url in self.balancer.scrape_targets().items()
            ]
        if self.config.fingerprint.enabled:
            from turnout.fingerprint import start_watch  # its statistics load only when used

            self.fingerprint_watch = await start_watch(self)
        self.started = True

    def _warm_estimates(self) -> None:
        """Routing starts from what the record says each deployment did, not from priors."""
        try:
            used = self.estimates.seed(recent_attempts(self.config.store.url))
        except (StoreError, ValueError) as exc:
            log.warning(
                "estimates start from priors: the record %s could not be read (%s)",
                self.writer.path,
                exc,
            )
            return
        if used:
            log.info("estimates warmed from %d recorded attempts", used)

    async def _probe_rtt(self, name: str, backend: Any, every_s: float) -> None:
        """The network part of latency, measured apart from the model's part."""
        while True:
            rtt = await backend.probe_rtt()
            if rtt is not None:
                self.estimates[name].rtt_s.update(rtt)
            await asyncio.sleep(every_s)

    async def close(self) -> None:
        if self.fingerprint_watch is not None:
            await self.fingerprint_watch.stop()
        for probe in self._probes:
            probe.cancel()
        if self.shared is not None:
            await self.shared.close()
        for layer in reversed(self.layers):
            await layer.close()
        if self.shared_breakers is not None:
            await self.shared_breakers.stop()
        await self.leadership.close()
        for backend in self.backends.values():
            await backend.close()
        await self.guard.close()
        self.feedback.close()
        self.writer.close()
        if self.tracer is not None:
            self.tracer.shutdown()

    def not_ready(self) -> list[str]:
        """What keeps the gateway from serving, in words; empty when ready."""
        problems = [
            f"deployment {n} is not ready" for n, b in self.backends.items() if not b.ready()
        ]
        store = self.writer.problem()
        if store is not None:
            problems.append(store)
        return problems

    def new_run(self, model: str, operation: Operation, stream: bool, body: Any) -> Run:
        self.metrics.in_flight.labels(self.metrics.model(model)).inc()
        return Run(
            id=new_request_id(),
            model=model,
            operation=operation.value if operation is Operation.COMPLETION else "chat",
            stream=stream,
            request_body=body,
            wire="completions" if operation is Operation.COMPLETION else "chat.completions",
        )

    def _learn_length(self, run: Run) -> None:
        """A balanced request's true answer length teaches the length predictor."""
        model = self.config.models.get(run.model)
        if self.balancer is None or model is None or model.routing != "balanced":
            return
        done = next((a for a in reversed(run.attempts) if a.ok and a.completion_tokens), None)
        if done is not None and isinstance(run.request_body, dict):
            self.balancer.observe(run.model, run.request_body, done.completion_tokens)

    def record_aside(self, run: Run) -> None:
        """A run outside the model's traffic (a shadow): recorded, not counted in its metrics."""
        for attempt in run.attempts:
            self.estimates.observe_attempt(attempt)
        self.writer.submit(run)

    def _finished(self, run: Run) -> None:
        self.metrics.in_flight.labels(self.metrics.model(run.model)).dec()
        self.metrics.observe(run)
        for attempt in run.attempts:
            self.estimates.observe_attempt(attempt)
        self._learn_length(run)
        self.writer.submit(run)
        self.guard.finished(run)
        for layer in self.layers:
            layer.observe(run)
