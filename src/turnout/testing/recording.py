"""A Backend that answers from a cassette, and records what the real backend answers.

It wraps a deployment's backend through `Gateway(wrap_backend=...)`, so replayed answers — and
replayed failures — still flow through turnout's real lifecycle: validation, retries, fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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

    def ready(self) -> bool:
        return self.inner.ready() if self._inner_started else self._starting is not None

    async def complete(self, request: UpstreamRequest) -> Completion:
        canonical = canonical_request(self.name, request, stream=False)
        asked, key, repeat = self.cassette.slot(canonical)
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
        canonical = canonical_request(self.name, request, stream=True)
        asked, key, repeat = self.cassette.slot(canonical)
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
