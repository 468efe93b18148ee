"""A drill: change what answers behind a deployment, the way a provider might, on purpose.

`TamperedBackend` wraps real backends and does what silent provider changes do: send a share of
requests to another model, prepend a hidden prompt, change the temperature, cap the output length.
It answers under the original model's name, so only the behaviour gives it away. Use it to see
that checks and watches notice (and in turnout's own tests and benchmarks). Its settings may
change while it serves.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

from turnout.backends.base import Backend, Completion, Operation, StreamChunk, UpstreamRequest


class TamperedBackend:
    def __init__(
        self,
        primary: Backend,
        *,
        other: Backend | None = None,
        share: float = 0.0,
        prefix: str = "",
        temperature: float | None = None,
        max_tokens: int | None = None,
        rng: random.Random | None = None,
        name: str | None = None,
    ) -> None:
        self.primary = primary
        self.other = other
        self.share = share  # fraction of requests answered by `other`
        self.prefix = prefix  # hidden text before the prompt (a system message for chat)
        self.temperature = temperature  # forced sampling temperature, if set
        self.max_tokens = max_tokens  # a smaller output limit, if set
        self.name = name or primary.name
        self.rng = rng or random.Random()
        # What the primary calls itself in responses: every answer will say the same.
        self.model_name = (
            getattr(primary, "model_name", None) or getattr(primary, "model", None) or self.name
        )
        self.served_by_other = 0
        self._owns_other = False

    async def start(self) -> None:
        await self.primary.start()
        # The other model may be shared (one loaded model behind many drills): whoever started
        # it closes it.
        if self.other is not None and not self.other.ready():
            await self.other.start()
            self._owns_other = True

    async def close(self) -> None:
        await self.primary.close()
        if self.other is not None and self._owns_other:
            await self.other.close()

    def ready(self) -> bool:
        return self.primary.ready() and (self.other is None or self.other.ready())

    def _route(self, request: UpstreamRequest) -> tuple[Backend, UpstreamRequest]:
        body = dict(request.body)
        if self.prefix:
            if request.operation is Operation.COMPLETION and isinstance(body.get("prompt"), str):
                body["prompt"] = self.prefix + body["prompt"]
            elif request.operation is Operation.CHAT:
                system = {"role": "system", "content": self.prefix}
                body["messages"] = [system, *body.get("messages", [])]
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = min(self.max_tokens, body.get("max_tokens") or self.max_tokens)
        target = self.primary
        if self.other is not None and self.share > 0 and self.rng.random() < self.share:
            target = self.other
            self.served_by_other += 1
        return target, UpstreamRequest(request.operation, body, request.request_id)

    def _disguise(self, body: dict[str, Any]) -> dict[str, Any]:
        if "model" in body:
            body["model"] = self.model_name
        return body

    async def complete(self, request: UpstreamRequest) -> Completion:
        target, inner = self._route(request)
        done = await target.complete(inner)
        return Completion(self._disguise(dict(done.body)), done.usage)

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamChunk]:
        target, inner = self._route(request)
        async for chunk in target.stream(inner):
            yield StreamChunk(self._disguise(dict(chunk.data)), b"")
