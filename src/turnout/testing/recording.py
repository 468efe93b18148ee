"""A Backend that answers from a cassette, and records what the real backend answers.

It wraps a deployment's backend through `Gateway(wrap_backend=...)`, so replayed answers — and
replayed failures — still flow through turnout's real lifecycle: validation, retries, fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from turnout.backends.base import (
    Backend,
    Completion,
    StreamChunk,
    UpstreamError,
    UpstreamRequest,
    Usage,
)
from turnout.testing.cassette import Cassette
from turnout.testing.keys import canonical_request


class CassetteBackend:
    """Replays `cassette` where it has the answer; asks `inner` only where the mode allows."""

    def __init__(self, inner: Backend, cassette: Cassette, name: str | None = None) -> None:
        self.inner = inner
        self.cassette = cassette
        self.name = name or inner.name
        self._inner_started = False
        self._starting: asyncio.Lock | None = None
        self._slots: dict[str, tuple[str, int]] = {}  # request id → its latest attempt's slot

    async def start(self) -> None:
        self._starting = asyncio.Lock()
        # Replay never touches the model (no weights loaded, no network); recording may.
        if self.cassette.records_everything:
            await self._start_inner()

    async def _start_inner(self) -> None:
        assert self._starting is not None, "backend not started"
        async with self._starting:
            if not self._inner_started:
                await self.inner.start()
                self._inner_started = True

    async def close(self) -> None:
        if self._inner_started:
            await self.inner.close()
            self._inner_started = False
        self.cassette.save()

    def forget(self, request_id: str) -> None:
        """The latest attempt of `request_id` did not count: an injected fault replaced its
        answer. Its entry stays (the real answer); the next identical call reuses its slot, so
        a retry that a fault caused is never recorded as an answer of its own."""
        slot = self._slots.pop(request_id, None)
        if slot is not None:
            self.cassette.unslot(*slot)

    def _slot(self, request: UpstreamRequest, stream: bool) -> tuple[dict[str, Any], str, int]:
        canonical = canonical_request(self.name, request, stream=stream)
        asked, key, repeat = self.cassette.slot(canonical)
        self._slots[request.request_id] = (key, repeat)
        return asked, key, repeat

    def ready(self) -> bool:
        return self.inner.ready() if self._inner_started else self._starting is not None

    async def complete(self, request: UpstreamRequest) -> Completion:
        asked, key, repeat = self._slot(request, stream=False)
        entry = self.cassette.find(key, repeat)
        if entry is not None:
            body = entry.body()
            return Completion(body, Usage.from_body(body.get("usage")))
        if not self.cassette.records:
            raise self.cassette.miss(asked, key, repeat)
        await self._start_inner()
        try:
            done = await self.inner.complete(request)
        except UpstreamError as err:
            self.cassette.record_error(asked, key, repeat, err)
            raise
        self.cassette.record_completion(asked, key, repeat, done.body)
        return done

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamChunk]:
        asked, key, repeat = self._slot(request, stream=True)
        entry = self.cassette.find(key, repeat)
        if entry is not None:
            for chunk in entry.chunks():
                yield chunk
            failure = entry.failure()
            if failure is not None:
                raise failure
            return
        if not self.cassette.records:
            raise self.cassette.miss(asked, key, repeat)
        await self._start_inner()
        seen: list[StreamChunk] = []
        source = self.inner.stream(request)
        finished, failure = False, None
        try:
            async for chunk in source:
                seen.append(chunk)
                yield chunk
            finished = True
        except UpstreamError as err:
            failure = err
            raise
        finally:
            await source.aclose()  # type: ignore[attr-defined]
            # A stream the reader abandoned (a fault that cuts it, a client that left) is kept
            # as far as it was read: replaying it to the same reader gives the same result.
            abandoned = not finished and failure is None
            self.cassette.record_stream(asked, key, repeat, seen, failure, partial=abandoned)
