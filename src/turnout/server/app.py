"""The ASGI app: OpenAI wire format in and out, SSE, health, metrics.

Plain ASGI rather than a framework: the request path is short and measured (see bench/).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from turnout.auth.admin import admin_refusal
from turnout.backends.base import Operation
from turnout.console import PREFIX as CONSOLE_PREFIX
from turnout.console import Console
from turnout.errors import ApiError
from turnout.gateway import Gateway
from turnout.intent.feedback import guarded
from turnout.lifecycle.engine import Reply, StreamHead, internal_error
from turnout.lifecycle.relay import DONE
from turnout.lifecycle.request import Request
from turnout.server import messages_route
from turnout.server.access import admit
from turnout.server.admin import PREFIX as ADMIN_PREFIX
from turnout.server.admin import admin_keys
from turnout.server.asgi import SSE_HEADERS as _SSE_HEADERS
from turnout.server.asgi import Message, Receive, Scope, Send
from turnout.server.asgi import TooLarge as _TooLarge
from turnout.server.asgi import header_list as _headers
from turnout.server.asgi import header_map as _header_map
from turnout.server.asgi import read_body as _read_body
from turnout.server.asgi import send_json as _send_json
from turnout.server.asgi import watch_disconnect as _watch_disconnect
from turnout.server.heap import freeze_startup_heap, thaw
from turnout.server.openapi import openapi_document
from turnout.server.responses import ResponsesRoute
from turnout.server.wire import check_request, parse_body
from turnout.wire.messages_render import error_body as messages_error_body

log = logging.getLogger("turnout.server")

_OPERATIONS = {"/v1/chat/completions": Operation.CHAT, "/v1/completions": Operation.COMPLETION}


class App:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._responses = ResponsesRoute(gateway)
        self._console = Console(gateway) if gateway.config.server.ui else None

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
            message = f"turnout failed while serving this request ({type(exc).__name__})"
            if scope.get("path", "").startswith("/v1/messages"):  # in the shape its SDKs read
                body = messages_error_body(500, message)
                return await _send_json(send, 500, body, {"x-should-retry": "false"})
            error = ApiError(500, message, type="server_error", code="internal_error")
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
                freeze_startup_heap()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.close()
                thaw()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path in messages_route.PATHS:  # Anthropic's Messages API
            return await messages_route.serve(self.gateway, scope, receive, send)
        operation = _OPERATIONS.get(path)
        if operation is not None:
            if method != "POST":
                error = ApiError(
                    405, f"{path} takes POST", code="method", headers={"allow": "POST"}
                )
                return await self._error(send, error)
            return await self._completion(scope, receive, send, operation)
        if path == "/v1/responses" or path.startswith("/v1/responses/"):
            return await self._responses(scope, receive, send)
        if path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/"):
            if self._console is None:  # server.ui: false
                return await self._error(
                    send, ApiError(404, f"no route {path[:64]}", code="not_found")
                )
            return await self._console(scope, receive, send)
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            return await self._admin(scope, receive, send)
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
            return await self._models(scope, send)
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
            guard = self.gateway.guard
            if guard.enabled and "metrics" in guard.auth.protect:
                refusal = admin_refusal(guard.auth, _header_map(scope))
                if refusal is not None:
                    return await self._error(send, refusal)
            return await self._metrics(send)
        await self._error(send, ApiError(404, f"no route {path}", code="not_found"))

    async def _models(self, scope: Scope, send: Send) -> None:
        """The models served; with client keys, those the key may use."""
        try:
            caller = self.gateway.guard.authenticate(_header_map(scope))
        except ApiError as exc:
            return await self._error(send, exc)
        names = list(self.gateway.models)
        if caller is not None:
            allowed = self.gateway.guard.ring().by_id[caller.key_id].models
            names = [n for n in names if not allowed or n in allowed]
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "turnout"} for n in names]
        await _send_json(send, 200, {"object": "list", "data": data})

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        gw = self.gateway
        refusal = admin_refusal(gw.config.auth, _header_map(scope))
        if refusal is not None:
            return await self._error(send, refusal)
        limit = gw.config.server.max_body_bytes
        try:
            raw = await _read_body(receive, limit, gw.config.server.body_read_timeout_s)
            status, body = await admin_keys(gw.guard, scope["method"], scope["path"], raw)
        except _TooLarge:
            error = ApiError(413, f"request body exceeds {limit} bytes", code="body_too_large")
            return await self._error(send, error)
        except TimeoutError:
            error = ApiError(408, "request body not received in time", code="request_timeout")
            return await self._error(send, error, {"connection": "close"})
        except ApiError as exc:
            return await self._error(send, exc)
        await _send_json(send, status, body, {"cache-control": "no-store"})

    async def _metrics(self, send: Send) -> None:
        m = self.gateway.metrics
        m.records_dropped_total(self.gateway.writer.dropped)
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
            caller = gw.guard.authenticate(_header_map(scope))  # the same key as the request
            key_id = caller.key_id if caller is not None else None
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
        headers = _header_map(scope)
        for key in ("traceparent", "tracestate"):
            if key in headers:
                run.client[key] = headers[key]
        rid = {"x-turnout-request-id": run.id}
        caller = None
        if bug is None:
            try:
                caller, limits = await admit(gw, headers, body if error is None else None, run)
                rid.update(limits)
            except ApiError as exc:
                error = exc
            except Exception as exc:  # a bug in the checks: recorded like any failure below
                bug = exc
        if bug is not None:
            reply = internal_error(run, bug)
            gw.engine.finish(run)
            return await _send_json(send, reply.status, reply.body, {**rid, **reply.headers})
        if error is not None:
            reply = gw.engine.reject(run, error)
            return await _send_json(send, reply.status, reply.body, {**rid, **reply.headers})
        assert body is not None
        request = Request.from_openai(body, operation, headers, caller)  # the one typed request
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
        last = b""  # `[DONE]` waits for the end of the body, to go out in its write
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
                if last:
                    await send({"type": "http.response.body", "body": last, "more_body": True})
                    last = b""
                if item.endswith(DONE):
                    last = item
                    continue
                await send({"type": "http.response.body", "body": item, "more_body": True})
            if started:
                await send({"type": "http.response.body", "body": last, "more_body": False})
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
