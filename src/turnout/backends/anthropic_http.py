"""Anthropic's Messages API as an upstream, spoken natively: `x-api-key`, `anthropic-version`,
its error classes (529 `overloaded_error`, 429 with `retry-after`), usage and stop reasons.

Requests arrive chat-shaped and answers leave chat-shaped (`anthropic_shape.py` translates), so
the lifecycle treats this deployment like any other.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
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
from turnout.backends.classify import classify
from turnout.backends.http import error_message, retry_after_seconds
from turnout.config import Timeouts
from turnout.config.schema import ANTHROPIC_VERSION
from turnout.privacy.scrub import scrub

# Error `type`s of a Messages error event and the failure each means before any token arrived.
_EVENT_FAILURES = {
    "overloaded_error": Failure.OVERLOADED,
    "rate_limit_error": Failure.RATE_LIMITED,
    "api_error": Failure.SERVER_ERROR,
    "timeout_error": Failure.TIMEOUT,
}


class AnthropicHTTPBackend:
    def __init__(
        self,
        name: str,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        version: str = ANTHROPIC_VERSION,
        timeouts: Timeouts | None = None,
        max_connections: int = 1000,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.model = model
        self.api_key_env = api_key_env
        self.timeouts = timeouts or Timeouts()
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"content-type": "application/json", "anthropic-version": version}
        self._secrets: tuple[str, ...] = ()

    async def start(self) -> None:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            self._headers["x-api-key"] = key
            self._secrets = (key,)
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def ready(self) -> bool:
        return self._session is not None

    def _post(self, request: UpstreamRequest, path: str, body: dict[str, Any], total: float) -> Any:
        assert self._session is not None, "backend not started"
        headers = {**request.headers, **self._headers, "x-turnout-request-id": request.request_id}
        return self._session.post(
            self.base_url + path,
            data=orjson.dumps(body),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=total, sock_connect=self.timeouts.connect_s),
        )

    def _body(self, request: UpstreamRequest) -> tuple[dict[str, Any], str]:
        if request.operation is not Operation.CHAT:
            raise UpstreamError(
                Failure.CLIENT_ERROR,
                "the Anthropic Messages API serves chat, not /v1/completions",
                status=400,
                code="unsupported_by_upstream",
            )
        return messages_body(request.body, self.model)

    async def probe_rtt(self) -> float | None:
        """Seconds for a round trip to the API (GET /v1/models; any answer counts), None if down."""
        assert self._session is not None, "backend not started"
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with self._session.get(
                self.base_url + "/v1/models",
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeouts.connect_s + 5),
            ) as resp:
                await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            return None
        return loop.time() - started

    async def _raise_for_status(self, resp: aiohttp.ClientResponse) -> None:
        if resp.status < 300:
            return
        raw = await resp.read()
        what = classify(resp.status, raw)
        code = what.code or _error_type(raw)  # Anthropic's own code is the error's `type`
        should = resp.headers.get("x-should-retry")
        raise UpstreamError(
            what.failure,
            error_message(resp.status, raw, self._secrets),
            status=resp.status,
            retry_after_s=retry_after_seconds(resp.headers),
            code=code and scrub(code, self._secrets),
            param=what.param and scrub(what.param, self._secrets),
            should_retry=None if should is None else should.strip().lower() == "true",
        )

    def _connection_error(self, failure: Failure, exc: Exception) -> UpstreamError:
        return UpstreamError(failure, f"upstream connection: {scrub(str(exc), self._secrets)}")

    async def complete(self, request: UpstreamRequest) -> Completion:
        body, tail = self._body(request)
        try:
            async with self._post(request, "/v1/messages", body, self.timeouts.total_s) as resp:
                await self._raise_for_status(resp)
                raw = await resp.read()
        except UpstreamError:
            raise
        except TimeoutError:
            raise UpstreamError(Failure.TIMEOUT, "upstream timed out") from None
        except aiohttp.ClientError as exc:
            raise self._connection_error(Failure.CONNECTION_ERROR, exc) from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                Failure.MALFORMED_RESPONSE, "upstream answered 200 with a body that is not JSON"
            ) from None
        chat = chat_completion(data)
        message = chat["choices"][0]["message"]
        if tail and isinstance(message.get("content"), str):
            message["content"] = drop_repeat(message["content"], tail)
        return Completion(chat, Usage.from_body(chat["usage"]))

    async def count_tokens(self, body: dict[str, Any], request_id: str) -> int:
        """Anthropic's own count for a Messages body (the model replaced by the deployment's)."""
        request = UpstreamRequest(Operation.CHAT, {}, request_id)
        payload = dict(body, model=self.model)
        try:
            async with self._post(
                request, "/v1/messages/count_tokens", payload, self.timeouts.total_s
            ) as resp:
                await self._raise_for_status(resp)
                data = orjson.loads(await resp.read())
        except UpstreamError:
            raise
        except TimeoutError:
            raise UpstreamError(Failure.TIMEOUT, "upstream timed out") from None
        except (aiohttp.ClientError, orjson.JSONDecodeError) as exc:
            raise self._connection_error(Failure.CONNECTION_ERROR, exc) from None
        count = data.get("input_tokens") if isinstance(data, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise UpstreamError(Failure.MALFORMED_RESPONSE, "upstream token count is not a count")
        return count

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamChunk]:
        body, tail = self._body(request)
        body["stream"] = True
        t = self.timeouts
        loop = asyncio.get_running_loop()
        started = loop.time()
        hard_stop = started + t.total_s
        translator = ChunkTranslator(tail)
        got_any = False
        resp: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout_at(min(hard_stop, started + t.first_token_s)):
                resp = await self._post(request, "/v1/messages", body, t.total_s)
            await self._raise_for_status(resp)
            name, data_lines = "", []
            while not translator.done:
                wait = t.idle_s if got_any else t.first_token_s
                deadline = min(hard_stop, loop.time() + wait if got_any else started + wait)
                async with asyncio.timeout_at(deadline):
                    line = await resp.content.readline()
                if not line:
                    break
                line = line.rstrip(b"\r\n")
                if line.startswith(b"event:"):
                    name = line[6:].strip().decode("utf-8", "replace")
                    continue
                if line.startswith(b"data:"):
                    data_lines.append(line[5:].lstrip())
                    continue
                if line or not data_lines:
                    continue
                event = self._event(name, b"\n".join(data_lines), translator.produced)
                name, data_lines = "", []
                for chunk in translator.feed(event.get("type") or name, event):
                    got_any = got_any or bool(chunk["choices"])
                    yield StreamChunk(chunk, b"data: " + orjson.dumps(chunk) + b"\n\n")
            if translator.done:
                resp.release()
                return
        except UpstreamError:
            raise
        except TimeoutError:
            phase = "between chunks" if got_any else "before the first token"
            raise UpstreamError(Failure.TIMEOUT, f"upstream timed out {phase}") from None
        except aiohttp.ClientPayloadError as exc:
            message = f"upstream stream broke: {scrub(str(exc), self._secrets)}"
            raise UpstreamError(Failure.BROKEN_STREAM, message) from None
        except aiohttp.ClientError as exc:
            failure = Failure.BROKEN_STREAM if got_any else Failure.CONNECTION_ERROR
            raise self._connection_error(failure, exc) from None
        finally:
            if resp is not None:
                resp.close()
        raise UpstreamError(Failure.BROKEN_STREAM, "upstream stream ended before message_stop")

    def _event(self, name: str, payload: bytes, produced: bool) -> dict[str, Any]:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                Failure.MALFORMED_RESPONSE, "upstream sent a stream event that is not JSON"
            ) from None
        if not isinstance(event, dict):
            raise UpstreamError(
                Failure.MALFORMED_RESPONSE, "upstream stream event is not an object"
            )
        if (event.get("type") or name) == "error":
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
