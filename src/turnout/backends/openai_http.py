"""Any OpenAI-compatible HTTP API: OpenAI, vLLM, llama.cpp server, Ollama, …"""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp
import orjson

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
from turnout.backends.protocol import check_chunk, check_completion
from turnout.config import Timeouts
from turnout.privacy.scrub import scrub

_PATHS = {Operation.CHAT: "/chat/completions", Operation.COMPLETION: "/completions"}


def retry_after_seconds(headers: Any) -> float | None:
    """Retry-After as seconds or an HTTP date; `retry-after-ms` where an API sends it."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_message(status: int, raw: bytes, known: Iterable[str] = ()) -> str:
    """The upstream's own words, scrubbed of secrets, tracebacks and addresses."""
    text = raw[:2000].decode("utf-8", "replace").strip()
    try:
        err = orjson.loads(raw).get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"]:
            text = err["message"]
        elif isinstance(err, str):
            text = err
    except (orjson.JSONDecodeError, AttributeError):
        pass
    text = scrub(text, known)
    return f"upstream {status}: {text}" if text else f"upstream {status}"


class OpenAIHTTPBackend:
    def __init__(
        self,
        name: str,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        timeouts: Timeouts | None = None,
        max_connections: int = 1000,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeouts = timeouts or Timeouts()
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._headers: dict[str, str] = {"Content-Type": "application/json"}
        self._secrets: tuple[str, ...] = ()  # what an upstream may echo and nobody may see

    async def start(self) -> None:
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if key:
                self._headers["Authorization"] = f"Bearer {key}"
                self._secrets = (key,)
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, json_serialize=lambda o: orjson.dumps(o).decode()
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def ready(self) -> bool:
        return self._session is not None

    def _post(self, request: UpstreamRequest, body: dict[str, Any], timeout: float) -> Any:
        assert self._session is not None, "backend not started"
        headers = {**request.headers, **self._headers}
        headers["x-turnout-request-id"] = request.request_id
        return self._session.post(
            self.base_url + _PATHS[request.operation],
            data=orjson.dumps(body),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=self.timeouts.connect_s),
        )

    async def probe_rtt(self) -> float | None:
        """Seconds for a round trip to the API (GET /models; any answer counts), None if down."""
        assert self._session is not None, "backend not started"
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with self._session.get(
                self.base_url + "/models",
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
        should = resp.headers.get("x-should-retry")
        raise UpstreamError(
            what.failure,
            error_message(resp.status, raw, self._secrets),
            status=resp.status,
            retry_after_s=retry_after_seconds(resp.headers),
            code=what.code and scrub(what.code, self._secrets),
            param=what.param and scrub(what.param, self._secrets),
            should_retry=None if should is None else should.strip().lower() == "true",
        )

    async def complete(self, request: UpstreamRequest) -> Completion:
        body = dict(request.body, model=self.model)
        body.pop("stream", None)
        body.pop("stream_options", None)
        try:
            async with self._post(request, body, self.timeouts.total_s) as resp:
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
        check_completion(data, request.operation)
        return Completion(data, Usage.from_body(data.get("usage")))

    def _connection_error(self, failure: Failure, exc: Exception) -> UpstreamError:
        return UpstreamError(failure, f"upstream connection: {scrub(str(exc), self._secrets)}")

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamChunk]:
        body = dict(request.body, model=self.model, stream=True)
        # Always ask for usage: the record needs it; the client sees it only if it asked.
        body["stream_options"] = dict(body.get("stream_options") or {}, include_usage=True)
        t = self.timeouts
        loop = asyncio.get_running_loop()
        started = loop.time()
        hard_stop = started + t.total_s
        finished = False
        got_any = False
        skipped = False
        resp: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout_at(min(hard_stop, started + t.first_token_s)):
                resp = await self._post(request, body, t.total_s)
            await self._raise_for_status(resp)
            content = resp.content
            data_lines: list[bytes] = []
            while True:
                wait = t.idle_s if got_any else t.first_token_s
                deadline = min(hard_stop, loop.time() + wait if got_any else started + wait)
                async with asyncio.timeout_at(deadline):
                    line = await content.readline()
                if not line:
                    break
                line = line.rstrip(b"\r\n")
                if line.startswith(b"data:"):
                    data_lines.append(line[5:].lstrip())
                    continue
                if line or not data_lines:
                    continue  # comments, event names, keep-alives
                payload = b"\n".join(data_lines)
                data_lines = []
                if payload == b"[DONE]":
                    resp.release()  # read to the end: the connection can be reused
                    return
                try:
                    chunk = self._parse_chunk(payload, request.operation)
                except UpstreamError as err:
                    # One bad event in a stream under way is skipped (and counted); two in a
                    # row, or one before anything else, and the stream is not to be trusted.
                    if err.failure is not Failure.MALFORMED_RESPONSE or not got_any or skipped:
                        raise
                    skipped = True
                    yield StreamChunk({}, b"", skipped=True)
                    continue
                skipped = False
                got_any = True
                if any(c.get("finish_reason") for c in chunk.get("choices") or ()):
                    finished = True
                yield StreamChunk(chunk, b"data: " + payload + b"\n\n")
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
                resp.close()  # no-op after release(); otherwise the connection is not reusable
        if not finished:
            raise UpstreamError(Failure.BROKEN_STREAM, "upstream stream ended before it finished")

    def _parse_chunk(self, payload: bytes, operation: Operation) -> dict[str, Any]:
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                Failure.MALFORMED_RESPONSE, "upstream sent a stream event that is not JSON"
            ) from None
        if isinstance(chunk, dict) and "error" in chunk:
            err = chunk["error"]
            msg = err.get("message") if isinstance(err, dict) else err
            msg = scrub(str(msg), self._secrets)
            raise UpstreamError(Failure.BROKEN_STREAM, f"upstream error mid-stream: {msg}")
        check_chunk(chunk, operation)
        return chunk
