"""Layers: capabilities that wrap the engine instead of subclassing it.

A layer takes anything with the engine's interface (`Handler`) and is one itself, so the gateway
stacks them. It sees every request on its way in and may also `observe` every finished run: the
gateway calls each layer's `observe` from the engine's on_finish chain, so runs that end inside
the engine (rejected, cancelled, failed) are seen too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from turnout.config import ModelConfig
from turnout.errors import ApiError
from turnout.lifecycle.engine import Reply, StreamHead
from turnout.lifecycle.request import Request
from turnout.lifecycle.run import Run


class Handler(Protocol):
    """What serves a request: the engine, or a layer around it."""

    def finish(self, run: Run) -> None: ...

    def reject(self, run: Run, error: ApiError) -> Reply: ...

    async def complete(
        self,
        run: Run,
        model: ModelConfig,
        request: Request,
    ) -> Reply: ...

    def stream(
        self,
        run: Run,
        model: ModelConfig,
        request: Request,
    ) -> AsyncIterator[Reply | StreamHead | bytes]: ...


class Layer:
    """Passes everything to `inner`; a capability overrides only what it changes."""

    def __init__(self, inner: Handler) -> None:
        self.inner = inner

    async def start(self) -> None:
        """Before the gateway serves its first request."""

    async def close(self) -> None:
        """After the gateway stops serving."""

    def observe(self, run: Run) -> None:
        """A run reached its terminal state and was recorded."""

    def finish(self, run: Run) -> None:
        self.inner.finish(run)

    def reject(self, run: Run, error: ApiError) -> Reply:
        return self.inner.reject(run, error)

    async def complete(
        self,
        run: Run,
        model: ModelConfig,
        request: Request,
    ) -> Reply:
        return await self.inner.complete(run, model, request)

    def stream(
        self,
        run: Run,
        model: ModelConfig,
        request: Request,
    ) -> AsyncIterator[Reply | StreamHead | bytes]:
        return self.inner.stream(run, model, request)
