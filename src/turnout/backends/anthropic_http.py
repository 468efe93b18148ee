"""Anthropic's Messages API as an upstream, spoken natively: `x-api-key`, `anthropic-version`,
its error classes (529 `overloaded_error`, 429 with `retry-after`), usage and stop reasons.

Requests arrive chat-shaped and answers leave chat-shaped (`anthropic_shape.py` translates), so
the lifecycle treats this deployment like any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from turnout.backends.anthropic_shape import (
    ChunkTranslator,
    chat_completion,
    drop_repeat,
    messages_body,
)
from turnout.backends.base import (
    Completion,
    Failure,
    Operation,
    StreamChunk,
    UpstreamError,
    UpstreamRequest,
    Usage,
)
from turnout.backends.classify import Classified
from turnout.backends.http import Event, HTTPBackend
from turnout.config.schema import ANTHROPIC_VERSION
from turnout.privacy.scrub import scrub

# Error `type`s of a Messages error event and the failure each means before any token arrived.
_EVENT_FAILURES = {
    "overloaded_error": Failure.OVERLOADED,
    "rate_limit_error": Failure.RATE_LIMITED,
    "api_error": Failure.SERVER_ERROR,
    "timeout_error": Failure.TIMEOUT,
}


class AnthropicHTTPBackend(HTTPBackend):
    probe_path = "/v1/models"

    def __init__(
        self, name: str, base_url: str, model: str, *, version: str = ANTHROPIC_VERSION, **kw: Any
    ) -> None:
        """`kw`: `HTTPBackend`'s own (api_key_env, timeouts, max_connections)."""
        super().__init__(name, base_url, model, **kw)
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self._headers = {"content-type": "application/json", "anthropic-version": version}

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def _error_code(self, what: Classified, raw: bytes) -> str | None:
        return what.code or _error_type(raw)  # Anthropic's own code is the error's `type`

    def _body(self, request: UpstreamRequest) -> tuple[dict[str, Any], str]:
        if request.operation is not Operation.CHAT:
            raise UpstreamError(
                Failure.CLIENT_ERROR,
                "the Anthropic Messages API serves chat, not /v1/completions",
                status=400,
                code="unsupported_by_upstream",
            )
        return messages_body(request.body, self.model)

    async def complete(self, request: UpstreamRequest) -> Completion:
        body, tail = self._body(request)
        data = await self._read_json(request, "/v1/messages", body)
        chat = chat_completion(data)
        message = chat["choices"][0]["message"]
        if tail and isinstance(message.get("content"), str):
            message["content"] = drop_repeat(message["content"], tail)
        return Completion(chat, Usage.from_body(chat["usage"]))

    async def count_tokens(self, body: dict[str, Any], request_id: str) -> int:
        """Anthropic's own count for a Messages body (the model replaced by the deployment's)."""
        request = UpstreamRequest(Operation.CHAT, {}, request_id)
        raw = await self._read(request, "/v1/messages/count_tokens", dict(body, model=self.model))
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise self._connection_error(Failure.CONNECTION_ERROR, exc) from None
        count = data.get("input_tokens") if isinstance(data, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise UpstreamError(Failure.MALFORMED_RESPONSE, "upstream token count is not a count")
        return count

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamChunk]:
        body, tail = self._body(request)
        body["stream"] = True
        translator = ChunkTranslator(tail)
        async with self._event_stream(request, "/v1/messages", body) as events:
            while not translator.done and (event := await events.read()) is not None:
                parsed = self._event(event, translator.produced)
                for chunk in translator.feed(parsed.get("type") or event.name, parsed):
                    events.got_any = events.got_any or bool(chunk["choices"])
                    yield StreamChunk(chunk, b"data: " + orjson.dumps(chunk) + b"\n\n")
            if translator.done:
                events.finish()
                return
        raise UpstreamError(Failure.BROKEN_STREAM, "upstream stream ended before message_stop")

    def _event(self, sse: Event, produced: bool) -> dict[str, Any]:
        event = sse.json()
        if not isinstance(event, dict):
            raise UpstreamError(
                Failure.MALFORMED_RESPONSE, "upstream stream event is not an object"
            )
        if (event.get("type") or sse.name) == "error":
            err = event.get("error") if isinstance(event.get("error"), dict) else {}
            kind = err.get("type") if isinstance(err.get("type"), str) else "error"
            msg = scrub(str(err.get("message") or kind), self._secrets)
            failure = Failure.BROKEN_STREAM if produced else _EVENT_FAILURES.get(kind)
            raise UpstreamError(
                failure or Failure.BROKEN_STREAM,
                f"upstream error mid-stream: {kind}: {msg}",
                code=kind[:64],
            )
        return event


def _error_type(raw: bytes) -> str | None:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    err = body.get("error") if isinstance(body, dict) else None
    kind = err.get("type") if isinstance(err, dict) else None
    return kind[:64] if isinstance(kind, str) and kind else None
