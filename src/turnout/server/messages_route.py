"""`POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API in and out.

The body is mapped onto the one typed request at the edge (`wire/messages.py`); the engine's
replies and stream come back chat-shaped and are rendered as Messages here
(`wire/messages_render.py`). Between the two the request is like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from turnout.backends.base import Operation, UpstreamError
from turnout.errors import ApiError
from turnout.gateway import Gateway
from turnout.lifecycle.engine import Reply, StreamHead, internal_error
from turnout.lifecycle.run import Run
from turnout.routing.router import estimate_prompt_tokens
from turnout.server.access import admit
from turnout.server.asgi import (
    SSE_HEADERS,
    Receive,
    Scope,
    Send,
    TooLarge,
    header_list,
    header_map,
    read_body,
    send_json,
    watch_disconnect,
)
from turnout.server.fields import quote
from turnout.server.wire import parse_body
from turnout.wire import messages, ratelimit
from turnout.wire.messages_render import MessagesStream, error_body, error_reply, message

PATHS = ("/v1/messages", "/v1/messages/count_tokens")


async def serve(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    if scope["method"] != "POST":
        body = error_body(405, f"{scope['path']} takes POST")
        return await send_json(send, 405, body, {"allow": "POST"})
    if scope["path"] == PATHS[1]:
        return await _count_tokens(gw, scope, receive, send)
    return await _messages(gw, scope, receive, send)


async def _read(gw: Gateway, receive: Receive) -> dict[str, Any]:
    """The parsed body; ApiError (OpenAI-shaped, rendered later) when it cannot be had."""
    server = gw.config.server
    try:
        return parse_body(
            await read_body(receive, server.max_body_bytes, server.body_read_timeout_s)
        )
    except TooLarge:
        raise ApiError(413, f"request body exceeds {server.max_body_bytes} bytes") from None
    except TimeoutError:
        message = f"request body not received within {server.body_read_timeout_s:g} s"
        raise ApiError(408, message, headers={"connection": "close"}) from None


def _known_model(gw: Gateway, chat: dict[str, Any]) -> None:
    if chat["model"] not in gw.models:
        known = ", ".join(sorted(gw.models))
        raise ApiError(
            404,
            f"model {quote(chat['model'])} does not exist here (served: {known})",
            param="model",
        )


async def _messages(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    body: dict[str, Any] | None = None
    chat: dict[str, Any] | None = None
    error: ApiError | None = None
    bug: Exception | None = None
    ignored: list[str] = []
    try:
        body = await _read(gw, receive)
        chat, ignored = messages.check(body)
        _known_model(gw, chat)
    except ApiError as exc:
        error = exc
    except Exception as exc:  # a bug in the checks: recorded like any failure below
        bug = exc
    model = body.get("model") if body is not None else None
    stream = body is not None and body.get("stream") is True
    run = gw.new_run(model if isinstance(model, str) else "", Operation.CHAT, stream, body)
    run.wire = messages.WIRE
    if ignored:
        run.attrs["ignored"] = ignored
    headers = header_map(scope)
    for key in ("traceparent", "tracestate"):
        if key in headers:
            run.client[key] = headers[key]
    caller, limits = None, {}
    if bug is None:
        try:  # the key first: a client without one hears 401 whatever it sent
            caller, limits = await admit(gw, headers, chat if error is None else None, run)
        except ApiError as exc:
            error = exc
        except Exception as exc:  # a bug in the checks: recorded like any failure
            bug = exc
    if bug is not None:
        reply = internal_error(run, bug)
        gw.engine.finish(run)
        return await _send_error(send, run, reply)
    if error is not None:
        return await _send_error(send, run, gw.engine.reject(run, error))
    assert body is not None and chat is not None
    request = messages.to_request(chat, body, headers)
    request.caller = caller
    if stream:
        return await _stream(gw, run, receive, send, request, limits)
    task = asyncio.current_task()
    assert task is not None
    gone = asyncio.Event()
    watcher = asyncio.create_task(watch_disconnect(receive, task, gone))
    try:
        reply = await gw.engine.complete(run, gw.models[run.model], request)
    except asyncio.CancelledError:
        if gone.is_set():
            task.uncancel()
            return
        raise
    finally:
        watcher.cancel()
    if reply.status != 200:
        return await _send_error(send, run, reply)
    out = message(reply.body, run.model, _message_id(run))
    head = {"x-turnout-request-id": run.id, **reply.headers, **limits}
    await send_json(send, 200, out, ratelimit.anthropic(head))


def _message_id(run: Run) -> str:
    return f"msg_{run.id}"


async def _send_error(send: Send, run: Run, reply: Reply) -> None:
    status, body = error_reply(reply.status, reply.body, reply.headers, run.id)
    head = {"x-turnout-request-id": run.id, **reply.headers}
    await send_json(send, status, body, ratelimit.anthropic(head))


async def _stream(
    gw: Gateway,
    run: Run,
    receive: Receive,
    send: Send,
    request: Any,
    limits: dict[str, str],
) -> None:
    task = asyncio.current_task()
    assert task is not None
    gone = asyncio.Event()
    watcher = asyncio.create_task(watch_disconnect(receive, task, gone))
    events = gw.engine.stream(run, gw.models[run.model], request)
    out = MessagesStream(run.model, _message_id(run))
    rid = ratelimit.anthropic({"x-turnout-request-id": run.id, **limits})
    started = False
    try:
        async for item in events:
            if isinstance(item, Reply):
                return await _send_error(send, run, item)
            if isinstance(item, StreamHead):
                head = SSE_HEADERS + header_list({**rid, **item.headers})
                await send({"type": "http.response.start", "status": 200, "headers": head})
                await send({"type": "http.response.body", "body": out.start(), "more_body": True})
                started = True
                continue
            piece = out.feed(item)
            if piece:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        if started:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if gone.is_set():
            task.uncancel()
            return
        raise
    except OSError:
        return
    finally:
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await events.aclose()  # type: ignore[attr-defined]


async def _count_tokens(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """Anthropic's own count where the model's first deployment is Anthropic and may see the
    request (privacy off); otherwise turnout's estimate, said so in `x-turnout-estimate`."""
    try:
        body = await _read(gw, receive)
        chat, _ = messages.check(body, count_only=True)
        _known_model(gw, chat)
    except ApiError as exc:
        return await send_json(send, exc.status, error_body(exc.status, exc.message), exc.headers)
    model = gw.models[chat["model"]]
    first = model.deployments[0]
    backend = gw.backends.get(first)
    counter = getattr(backend, "count_tokens", None)
    if counter is not None and model.privacy == "off":
        upstream = {k: body[k] for k in ("messages", "system", "tools", "tool_choice") if k in body}
        try:
            count = await counter(upstream, "count")
        except UpstreamError as err:
            status = 529 if err.failure.value == "overloaded" else err.status or 502
            return await send_json(send, status, error_body(status, err.message))
        return await send_json(send, 200, {"input_tokens": count})
    estimate = estimate_prompt_tokens(chat) + sum(
        len(str(t["function"])) // 4 for t in chat.get("tools", ())
    )
    await send_json(send, 200, {"input_tokens": estimate}, {"x-turnout-estimate": "true"})
