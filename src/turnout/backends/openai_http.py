"""Any OpenAI-compatible HTTP API: OpenAI, vLLM, llama.cpp server, Ollama, …"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from turnout.backends.base import (
    Completion,
    Failure,
    Operation,
    StreamChunk,
    UpstreamError,
    UpstreamRequest,
    Usage,
)
from turnout.backends.http import Event, HTTPBackend
from turnout.backends.protocol import check_chunk, check_completion
from turnout.privacy.scrub import scrub

_PATHS = {Operation.CHAT: "/chat/completions", Operation.COMPLETION: "/completions"}


class OpenAIHTTPBackend(HTTPBackend):
    async def complete(self, request: UpstreamRequest) -> Completion:
        body = dict(request.body, model=self.model)
        body.pop("stream", None)
        body.pop("stream_options", None)
        data = await self._read_json(request, _PATHS[request.operation], body)
        check_completion(data, request.operation)
        return Completion(data, Usage.from_body(data.get("usage")))

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamChunk]:
        body = dict(request.body, model=self.model, stream=True)
        # Always ask for usage: the record needs it; the client sees it only if it asked.
        body["stream_options"] = dict(body.get("stream_options") or {}, include_usage=True)
        finished = False
        skipped = False
        async with self._event_stream(request, _PATHS[request.operation], body) as events:
            while (event := await events.read()) is not None:
                if event.data == b"[DONE]":
                    events.finish()
                    return
                try:
                    chunk = self._parse_chunk(event, request.operation)
                except UpstreamError as err:
                    # One bad event in a stream under way is skipped (and counted); two in a
                    # row, or one before anything else, and the stream is not to be trusted.
                    malformed = err.failure is Failure.MALFORMED_RESPONSE
                    if not malformed or not events.got_any or skipped:
                        raise
                    skipped = True
                    yield StreamChunk({}, b"", skipped=True)
                    continue
                skipped = False
                events.got_any = True
                if any(c.get("finish_reason") for c in chunk.get("choices") or ()):
                    finished = True
                yield StreamChunk(chunk, b"data: " + event.data + b"\n\n")
        if not finished:
            raise UpstreamError(Failure.BROKEN_STREAM, "upstream stream ended before it finished")

    def _parse_chunk(self, event: Event, operation: Operation) -> dict[str, Any]:
        chunk = event.json()
        if isinstance(chunk, dict) and "error" in chunk:
            err = chunk["error"]
            msg = err.get("message") if isinstance(err, dict) else err
            msg = scrub(str(msg), self._secrets)
            raise UpstreamError(Failure.BROKEN_STREAM, f"upstream error mid-stream: {msg}")
        check_chunk(chunk, operation)
        return chunk
