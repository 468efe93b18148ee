"""Model migration on the request path: the canary split and shadow mirroring, as a layer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from turnout.config import ModelConfig
from turnout.layers import Handler, Layer
from turnout.lifecycle.engine import Reply, StreamHead
from turnout.lifecycle.request import Request
from turnout.lifecycle.run import Run
from turnout.migrate.events import EventLog

if TYPE_CHECKING:
    from turnout.fleet.canary import CanaryFleet
    from turnout.gateway import Gateway


def migrating(models: Mapping[str, ModelConfig]) -> bool:
    return any(m.shadow is not None or m.canary is not None for m in models.values())


def candidates(models: Mapping[str, ModelConfig]) -> set[str]:
    """Deployments only a migration uses: the gateway must build their backends too."""
    out = {m.shadow.deployment for m in models.values() if m.shadow is not None}
    return out | {m.canary.deployment for m in models.values() if m.canary is not None}


class MigrationLayer(Layer):
    """A model's canary chooses the arm and its shadow mirrors the request, around any handler."""

    def __init__(self, inner: Handler, gateway: Gateway) -> None:
        # Here, not at the top: a gateway without migrations never loads the statistics.
        from turnout.gateway import new_request_id
        from turnout.migrate.canary import Canaries
        from turnout.migrate.shadow import Shadows

        super().__init__(inner)
        models = gateway.config.models
        self.events = EventLog(gateway.config.store.url)
        registry = gateway.metrics.registry
        self.shadows = Shadows(
            models,
            gateway.fleet,
            gateway.record_aside,
            registry,
            self.events,
            new_request_id,
            redis=gateway.leadership.redis,
        )
        self.canaries = Canaries(models, registry, self.events, gateway.config.store.url)
        self.fleet: CanaryFleet | None = None
        if gateway.leadership.redis is not None and self.canaries.all():
            from turnout.fleet.canary import CanaryFleet

            self.fleet = CanaryFleet(
                self.canaries, gateway.leadership, self.events, gateway.config.store.url
            )

    @classmethod
    def for_gateway(cls, inner: Handler, gateway: Gateway) -> MigrationLayer | None:
        """The layer when some model has a shadow or a canary; None otherwise."""
        return cls(inner, gateway) if migrating(gateway.config.models) else None

    async def start(self) -> None:
        self.events.open()
        await self.shadows.start()
        self.canaries.start()
        if self.fleet is not None:
            await self.fleet.start()

    async def close(self) -> None:
        if self.fleet is not None:
            await self.fleet.close()
        await self.shadows.close()
        self.events.close()

    def observe(self, run: Run) -> None:
        self.canaries.observe(run)

    async def complete(
        self,
        run: Run,
        model: ModelConfig,
        request: Request,
    ) -> Reply:
        placed = self.canaries.place(run, model, request.original, request.headers)
        self.shadows.mirror(run, model, request.original, request.operation, request.headers)
        reply = await self.inner.complete(run, placed, request)
        self.canaries.label(run, reply.headers)
        return reply

    async def stream(
        self,
        run: Run,
        model: ModelConfig,
        request: Request,
    ) -> AsyncIterator[Reply | StreamHead | bytes]:
        placed = self.canaries.place(run, model, request.original, request.headers)
        self.shadows.mirror(run, model, request.original, request.operation, request.headers)
        events = self.inner.stream(run, placed, request)
        try:
            async for item in events:
                if isinstance(item, Reply | StreamHead):
                    self.canaries.label(run, item.headers)
                yield item
        finally:
            await events.aclose()  # type: ignore[attr-defined]
