"""The ASGI app: OpenAI wire format in and out, SSE, health, metrics.

Plain ASGI rather than a framework: the request path is short and measured (see bench/).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from turnout.backends.base import Operation
from turnout.errors import ApiError, TurnoutError
from turnout.gateway import Gateway
from turnout.intent.feedback import guarded
from turnout.lifecycle.engine import Reply, StreamHead, internal_error
from turnout.lifecycle.request import Request
from turnout.server.fields import quote
from turnout.server.openapi import openapi_document
from turnout.server.wire import check_request, parse_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("turnout.server")

_JSON = (b"content-type", b"application/json")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_OPERATIONS = {"/v1/chat/completions": Operation.CHAT, "/v1/completions": Operation.COMPLETION}


def _headers(extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in extra.items()]


async def _send_json(
    send: Send, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, *_headers(headers or {})],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class _TooLarge(TurnoutError):
    pass


async def _read_body(receive: Receive, limit: int, timeout_s: float) -> bytes:
    """The whole body; raises TimeoutError when it takes longer than `timeout_s` to arrive.

    A bare timer rather than `asyncio.timeout`: it runs on every request, and costs a fifth.
    """
    task = asyncio.current_task()
    assert task is not None
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout_s, expire)
    try:
        return await _read_all(receive, limit)
    except asyncio.CancelledError:
        if fired and task.uncancel() == 0:
            raise TimeoutError from None
        raise
    finally:
        timer.cancel()


async def _read_all(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class App:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._guarded(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The last resort: no exception leaves as a plain-text 500 or an unfinished record."""
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._http(scope, receive, tracking)
        except Exception as exc:
            log.error(
                "%s %s failed inside turnout", scope.get("method"), scope.get("path"), exc_info=exc
            )
            if started:
                raise  # mid-response: all that is left is to drop the connection
            error = ApiError(
                500,
                f"turnout failed while serving this request ({type(exc).__name__})",
                type="server_error",
                code="internal_error",
            )
            await self._error(send, error, {"x-should-retry": "false"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        operation = _OPERATIONS.get(path)
        if operation is not None:
            if method != "POST":
                error = ApiError(
                    405, f"{path} takes POST", code="method", headers={"allow": "POST"}
                )
                return await self._error(send, error)
            return await self._completion(scope, receive, send, operation)
        if path == "/v1/feedback" and method == "POST":
            return await self._feedback(scope, receive, send)
        if method not in ("GET", "HEAD"):
            error = ApiError(
                405,
                f"{method} {path[:64]} is not served",
                code="method",
                headers={"allow": "GET, HEAD"},
            )
            return await self._error(send, error)
        if path == "/v1/models":
            data = [
                {"id": name, "object": "model", "created": 0, "owned_by": "turnout"}
                for name in self.gateway.models
            ]
            return await _send_json(send, 200, {"object": "list", "data": data})
        if path == "/openapi.json":
            return await _send_json(send, 200, orjson.Fragment(openapi_document()))
        if path == "/healthz":
            return await _send_json(send, 200, {"status": "ok"})
        if path == "/readyz":
            problems = self.gateway.not_ready()
            status = 503 if problems else 200
            body = {"status": "not ready" if problems else "ready", "problems": problems}
            return await _send_json(send, status, body)
        if path == "/metrics":
            return await self._metrics(send)
        await self._error(send, ApiError(404, f"no route {path}", code="not_found"))

    async def _metrics(self, send: Send) -> None:
        m = self.gateway.metrics
        m.records_dropped.set(self.gateway.writer.dropped)
        m.records_pending.set(self.gateway.writer.pending)
        body = m.render()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _feedback(self, scope: Scope, receive: Receive, send: Send) -> None:
        gw = self.gateway
        try:
            raw = await _read_body(
                receive, gw.config.server.max_body_bytes, gw.config.server.body_read_timeout_s
            )
            key_id = scope.get("turnout.key_id")  # set by client-key auth, where configured
            body = await guarded(gw.feedback.submit(parse_body(raw), key_id))
        except _TooLarge:
            limit = gw.config.server.max_body_bytes
            error = ApiError(413, f"request body exceeds {limit} bytes", code="body_too_large")
            return await self._error(send, error)
        except TimeoutError:
            error = ApiError(408, "request body not received in time", code="request_timeout")
            return await self._error(send, error, {"connection": "close"})
        except ApiError as error:
            return await self._error(send, error)
        await _send_json(send, 200, body)

    async def _error(
        self, send: Send, error: ApiError, headers: dict[str, str] | None = None
    ) -> None:
        await _send_json(send, error.status, error.body(), {**error.headers, **(headers or {})})

    async def _completion(
        self, scope: Scope, receive: Receive, send: Send, operation: Operation
    ) -> None:
        gw = self.gateway
        limit = gw.config.server.max_body_bytes
        body: dict[str, Any] | None = None
        error: ApiError | None = None
        bug: Exception | None = None
        try:
            raw = await _read_body(receive, limit, gw.config.server.body_read_timeout_s)
            body = parse_body(raw)
            check_request(body, operation)
            model = gw.models.get(body["model"])
            if model is None:
                known = ", ".join(sorted(gw.models))
                raise ApiError(
                    404,
                    f"model {quote(body['model'])} does not exist here (served: {known})",
                    code="model_not_found",
                    param="model",
                )
        except _TooLarge:
            error = ApiError(413, f"request body exceeds {limit} bytes", code="body_too_large")
        except TimeoutError:
            seconds = gw.config.server.body_read_timeout_s
            message = f"request body not received within {seconds:g} s"
            close = {"connection": "close"}  # the rest of the body may still be on its way
            error = ApiError(408, message, code="request_timeout", headers=close)
        except ApiError as exc:
            error = exc
        except Exception as exc:  # a bug in the checks: recorded like any failure below
            bug = exc
        model_name = body.get("model") if body is not None else None
        stream = bool(body.get("stream")) if body is not None else False
        run = gw.new_run(
            model_name if isinstance(model_name, str) else "", operation, stream is True, body
        )
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        for key in ("traceparent", "tracestate"):
            if key in headers:
                run.client[key] = headers[key]
        rid = {"x-turnout-request-id": run.id}
        if bug is not None:
            reply = internal_error(run, bug)
            gw.engine.finish(run)
            return await _send_json(send, reply.status, reply.body, {**rid, **reply.headers})
        if error is not None:
            reply = gw.engine.reject(run, error)
            return await _send_json(send, reply.status, reply.body, {**rid, **reply.headers})
        assert body is not None
        request = Request.from_openai(body, operation, headers)  # the one typed request
        if stream is True:
            return await self._stream(run, receive, send, request, rid)
        task = asyncio.current_task()
        assert task is not None
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, task, gone))
        try:
            reply = await gw.engine.complete(run, gw.models[run.model], request)
        except asyncio.CancelledError:
            if gone.is_set():
                task.uncancel()
                return  # the client went away; the engine recorded `cancelled`
            raise
        finally:
            watcher.cancel()
        await _send_json(send, reply.status, reply.body, {**rid, **reply.headers})

    async def _stream(
        self,
        run: Any,
        receive: Receive,
        send: Send,
        request: Request,
        rid: dict[str, str],
    ) -> None:
        gw = self.gateway
        task = asyncio.current_task()
        assert task is not None
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, task, gone))
        events = gw.engine.stream(run, gw.models[run.model], request)
        started = False
        try:
            async for item in events:
                if isinstance(item, Reply):
                    await _send_json(send, item.status, item.body, {**rid, **item.headers})
                    return
                if isinstance(item, StreamHead):
                    start = _SSE_HEADERS + _headers({**rid, **item.headers})
                    await send({"type": "http.response.start", "status": 200, "headers": start})
                    started = True
                    continue
                await send({"type": "http.response.body", "body": item, "more_body": True})
            if started:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if gone.is_set():
                task.uncancel()
                return
            raise
        except OSError:
            return  # the socket went away under a write; the engine recorded `cancelled`
        finally:
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await events.aclose()  # type: ignore[attr-defined]


async def _watch_disconnect(receive: Receive, task: asyncio.Task[Any], gone: asyncio.Event) -> None:
    """Cancel the request's task when the client goes away, so its upstream work stops too."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            task.cancel()
            return
