"""What every HTTP upstream shares: the session, the post with its deadlines, the answer read whole
or as server-sent events, and HTTP statuses and transport errors classified into failures.

Each wire (`openai_http`, `anthropic_http`, `responses_http`) keeps its own paths, headers and
shapes; none of them repeats how a call travels or how it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, NamedTuple

import aiohttp
import orjson

from turnout.backends.base import Failure, UpstreamError, UpstreamRequest
from turnout.backends.classify import Classified, classify
from turnout.config import Timeouts
from turnout.privacy.scrub import scrub


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


class Event(NamedTuple):
    name: str  # the `event:` line's, "" when the upstream named none
    data: bytes

    def json(self, failure: Failure = Failure.MALFORMED_RESPONSE) -> Any:
        """The data parsed; `failure` where it is not JSON."""
        try:
            return orjson.loads(self.data)
        except orjson.JSONDecodeError:
            raise UpstreamError(failure, "upstream sent a stream event that is not JSON") from None


MAX_EVENT_BYTES = 32 * 1024 * 1024  # one event past this is not an answer worth holding


class EventStream:
    """A streamed answer's server-sent events, each network read against its deadline.

    Until the reader sets `got_any`, the first-token deadline runs from the start of the call;
    after, each read gets the idle deadline; the total deadline caps both. Events are cut from
    what each read brought, so one read that carries several costs one wait, not one per line.
    """

    def __init__(self, resp: aiohttp.ClientResponse, timeouts: Timeouts, started: float) -> None:
        self._resp = resp
        self._timeouts = timeouts
        self._started = started
        self._buf = b""
        self._pos = 0  # where the unread part of `_buf` starts
        self._tail: list[bytes] = []  # read after `_buf`, no line end in it yet
        self._eof = False
        self._name = ""
        self._data: list[bytes] = []
        self.got_any = False

    async def read(self) -> Event | None:
        """The next event, None where the body ends."""
        while True:
            event = self._cut()
            if event is not None:
                return event
            if self._eof:
                return None
            await self._more()

    def _cut(self) -> Event | None:
        """The next whole event in what has been read, if there is one."""
        buf, pos = self._buf, self._pos
        while True:
            end = buf.find(b"\n", pos)
            if end == -1:
                if not self._eof or pos >= len(buf):
                    self._pos = pos
                    return None
                end = len(buf)  # the body ended mid-line: the line counts as it is
            line = buf[pos:end].rstrip(b"\r\n")
            pos = end + 1
            if line.startswith(b"data:"):
                self._data.append(line[5:].lstrip())
            elif line.startswith(b"event:"):
                self._name = line[6:].strip().decode("utf-8", "replace")
            elif not line and self._data:
                self._pos = pos
                name, self._name = self._name, ""
                data, self._data = self._data, []
                return Event(name, data[0] if len(data) == 1 else b"\n".join(data))
            # anything else: comments, keep-alives, fields SSE clients ignore

    async def _more(self) -> None:
        t = self._timeouts
        loop = asyncio.get_running_loop()
        wait = t.idle_s if self.got_any else t.first_token_s
        deadline = loop.time() + wait if self.got_any else self._started + wait
        async with asyncio.timeout_at(min(self._started + t.total_s, deadline)):
            got = await self._resp.content.readany()
        if got:
            held = len(self._buf) - self._pos + sum(map(len, self._tail)) + len(got)
            if held + sum(map(len, self._data)) > MAX_EVENT_BYTES:
                raise UpstreamError(
                    Failure.MALFORMED_RESPONSE,
                    f"upstream sent a stream event over {MAX_EVENT_BYTES // (1024 * 1024)} MiB",
                )
            self._tail.append(got)
            if b"\n" not in got:
                return  # a long line still arriving: joined once it ends, not at every read
        else:
            self._eof = True
        self._buf = b"".join([self._buf[self._pos :], *self._tail])
        self._pos = 0
        self._tail = []

    def finish(self) -> None:
        """The answer was read to its end: the connection can be reused."""
        self._resp.release()


class HTTPBackend:
    """A deployment behind an HTTP API; a wire adds its paths, its auth header and its shapes."""

    probe_path = "/models"

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

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def _error_code(self, what: Classified, raw: bytes) -> str | None:
        """The upstream's own code for an error response, kept for the client."""
        return what.code

    async def start(self) -> None:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            self._headers.update(self._auth_headers(key))
            self._secrets = (key,)
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def ready(self) -> bool:
        return self._session is not None

    async def probe_rtt(self) -> float | None:
        """Seconds for a round trip to the API (GET its models; any answer counts), None if down."""
        assert self._session is not None, "backend not started"
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with self._session.get(
                self.base_url + self.probe_path,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeouts.connect_s + 5),
            ) as resp:
                await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            return None
        return loop.time() - started

    def _post(self, request: UpstreamRequest, path: str, body: dict[str, Any], total: float) -> Any:
        assert self._session is not None, "backend not started"
        headers = {**request.headers, **self._headers, "x-turnout-request-id": request.request_id}
        return self._session.post(
            self.base_url + path,
            data=orjson.dumps(body),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=total, sock_connect=self.timeouts.connect_s),
        )

    async def _raise_for_status(self, resp: aiohttp.ClientResponse) -> None:
        if resp.status < 300:
            return
        raw = await resp.read()
        what = classify(resp.status, raw)
        code = self._error_code(what, raw)
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

    async def _read(self, request: UpstreamRequest, path: str, body: dict[str, Any]) -> bytes:
        """A whole answer's body, or the failure the call ended in."""
        try:
            async with self._post(request, path, body, self.timeouts.total_s) as resp:
                await self._raise_for_status(resp)
                return await resp.read()
        except UpstreamError:
            raise
        except TimeoutError:
            raise UpstreamError(Failure.TIMEOUT, "upstream timed out") from None
        except aiohttp.ClientError as exc:
            raise self._connection_error(Failure.CONNECTION_ERROR, exc) from None

    async def _read_json(self, request: UpstreamRequest, path: str, body: dict[str, Any]) -> Any:
        raw = await self._read(request, path, body)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                Failure.MALFORMED_RESPONSE, "upstream answered 200 with a body that is not JSON"
            ) from None

    @contextlib.asynccontextmanager
    async def _event_stream(
        self, request: UpstreamRequest, path: str, body: dict[str, Any], *, between: str = "chunks"
    ) -> AsyncIterator[EventStream]:
        """A streamed call; whatever fails inside the block leaves it as a classified failure.

        `between` names what the upstream sends, for a timeout after the first of them.
        """
        t = self.timeouts
        started = asyncio.get_running_loop().time()
        resp: aiohttp.ClientResponse | None = None
        events: EventStream | None = None
        try:
            async with asyncio.timeout_at(min(started + t.total_s, started + t.first_token_s)):
                resp = await self._post(request, path, body, t.total_s)
            await self._raise_for_status(resp)
            events = EventStream(resp, t, started)
            yield events
        except UpstreamError:
            raise
        except TimeoutError:
            phase = f"between {between}" if events and events.got_any else "before the first token"
            raise UpstreamError(Failure.TIMEOUT, f"upstream timed out {phase}") from None
        except aiohttp.ClientPayloadError as exc:
            message = f"upstream stream broke: {scrub(str(exc), self._secrets)}"
            raise UpstreamError(Failure.BROKEN_STREAM, message) from None
        except aiohttp.ClientError as exc:
            got_any = events is not None and events.got_any
            failure = Failure.BROKEN_STREAM if got_any else Failure.CONNECTION_ERROR
            raise self._connection_error(failure, exc) from None
        finally:
            if resp is not None:
                resp.close()  # no-op after finish(); otherwise the connection is not reusable
