"""Background loops that stop at a flag, not by cancellation alone: the Redis client can swallow
a cancellation that lands in the middle of a command, and a loop that misses it never ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class Loop:
    """Runs `body` until stopped; `body` returns how long to wait before it runs again."""

    def __init__(self, body: Callable[[], Awaitable[float]], name: str) -> None:
        self.body = body
        self.name = name
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while not self._stop.is_set():
            delay = await self.body()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=2)
        if not done:  # stuck in a call: cancel, and do not wait for ever either
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=2)
