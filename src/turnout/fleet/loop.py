"""The fleet's background work: loops that stop at a flag, not by cancellation alone (the Redis
client can swallow a cancellation that lands in the middle of a command, and a loop that misses
it never ends), and Redis writes sent off the caller's path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any


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


class Writes:
    """Redis writes sent off the caller's path, whose failure is only logged: what they share
    with the other replicas expires there by itself."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, op: Coroutine[Any, Any, Any]) -> None:
        async def run() -> None:
            try:
                await op
            except Exception as exc:
                self.log.warning("fleet: %s could not be shared (%s)", self.what, exc)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
