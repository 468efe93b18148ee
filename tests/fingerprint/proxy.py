"""A provider that changes what answers behind an unchanged name: a real OpenAI-compatible HTTP
server on 127.0.0.1, in a background thread, in front of a real model (any turnout Backend).

What it changes is set on `change` and may be changed while it serves, as a provider would.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from turnout.backends.base import Backend, Operation, UpstreamError, UpstreamRequest


@dataclass
class Change:
    temperature: float | None = None  # forced on every request
    empty_share: float = 0.0  # share of requests answered with nothing (the model is not asked)
    strip_logprobs: bool = False  # serve no log-probabilities (many providers do not)
    rng: random.Random = field(default_factory=lambda: random.Random(0))


class ChangingProxy:
    def __init__(self, backend: Backend, model: str = "assistant") -> None:
        self.backend = backend
        self.model = model
        self.change = Change()
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _answer(self, request: web.Request) -> web.Response:
        chat = request.path.endswith("/chat/completions")
        operation = Operation.CHAT if chat else Operation.COMPLETION
        body: dict[str, Any] = orjson.loads(await request.read())
        change = self.change
        self.requests += 1
        if change.temperature is not None:
            body["temperature"] = change.temperature
        if change.strip_logprobs:
            body.pop("logprobs", None)
            body.pop("top_logprobs", None)
        if change.empty_share and change.rng.random() < change.empty_share:
            return self._json(self._empty(operation, "logprobs" in body))
        try:
            done = await self.backend.complete(UpstreamRequest(operation, body, "proxy"))
        except UpstreamError as exc:
            error = {"error": {"message": exc.message, "type": "upstream", "code": None}}
            return web.json_response(error, status=exc.status or 502)
        return self._json(dict(done.body, model=self.model))

    def _empty(self, operation: Operation, logprobs: bool) -> dict[str, Any]:
        """An empty answer, as a server sends one: with empty logprobs where they were asked."""
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if operation is Operation.COMPLETION:
            choice["text"] = ""
            lp: dict[str, Any] = {"tokens": [], "token_logprobs": [], "top_logprobs": []}
        else:
            choice["message"] = {"role": "assistant", "content": ""}
            lp = {"content": []}
        if logprobs:
            choice["logprobs"] = lp
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return {"choices": [choice], "usage": usage, "model": self.model}

    @staticmethod
    def _json(body: dict[str, Any]) -> web.Response:
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/completions", self._answer)
        app.router.add_post("/v1/chat/completions", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> ChangingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
