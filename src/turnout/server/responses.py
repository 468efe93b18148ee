"""`/v1/responses`: the Responses API at the edge, around the one engine.

A body is checked and mapped onto a chat body (`wire/responses.py`), the engine runs it like any
request, and its Reply or stream is rendered back as a Response object or Responses events.
Stored responses are the record's: `GET` renders one from it; `DELETE` erases its bodies (the
run's record stays, without content, marked deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from turnout.backends.base import Operation
from turnout.errors import ApiError
from turnout.lifecycle.engine import Reply, StreamHead, internal_error
from turnout.lifecycle.run import Run
from turnout.server.access import admit
from turnout.server.asgi import SSE_HEADERS as _SSE_HEADERS
from turnout.server.asgi import Receive, Scope, Send, header_map
from turnout.server.asgi import TooLarge as _TooLarge
from turnout.server.asgi import header_list as _headers
from turnout.server.asgi import read_body as _read_body
from turnout.server.asgi import send_json as _send_json
from turnout.server.asgi import watch_disconnect as _watch_disconnect
from turnout.server.fields import quote
from turnout.server.wire import parse_body
from turnout.server.worker import worker_identity
from turnout.store.errors import RecordNotFound, StoreError
from turnout.store.read import open_reader
from turnout.wire import responses as wire
from turnout.wire.responses_events import ResponseEvents
from turnout.wire.responses_render import echo, from_chat, from_record

if TYPE_CHECKING:
    from turnout.gateway import Gateway

PATH = "/v1/responses"


def _not_found(rid: str, why: str = "") -> ApiError:
    return ApiError(404, f"no response {quote(rid)} is stored here{why}", code="not_found")


class ResponsesRoute:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path == PATH:
            if method != "POST":
                allow = {"allow": "POST"}
                return await _fail(send, ApiError(405, f"{PATH} takes POST", code="method",
                                                  headers=allow))  # fmt: skip
            return await self._create(scope, receive, send)
        rid = path[len(PATH) + 1 :]
        if method in ("GET", "HEAD", "DELETE"):
            try:
                owner = self._owner(scope)
            except ApiError as exc:
                return await _fail(send, exc)
            if method == "DELETE":
                return await self._delete(send, rid, owner)
            return await self._retrieve(send, rid, owner)
        allow = {"allow": "GET, HEAD, DELETE"}
        await _fail(send, ApiError(405, f"{path[:64]} takes GET or DELETE", code="method",
                                   headers=allow))  # fmt: skip

    # -- stored responses ---------------------------------------------------------------------

    def _full_bodies(self) -> None:
        mode = self.gateway.config.store.record_bodies
        if mode != "full":
            raise ApiError(
                400,
                f"stored responses need the record's bodies (store.record_bodies: full; this"
                f" gateway records {mode}), so previous_response_id and GET /v1/responses/{{id}}"
                " cannot work here",
                code="responses_not_stored",
            )

    def _owner(self, scope: Scope) -> str | None:
        """The client key asking (401 without a valid one when keys are on); None: keys off."""
        headers = header_map(scope)
        caller = self.gateway.guard.authenticate(headers)
        return caller.key_id if caller is not None else None

    async def _record(self, rid: str, owner: str | None) -> dict[str, Any]:
        """The recorded Responses request behind `rid`; written first if still queued.

        With keys on, a response belongs to the key that created it: to any other it does not
        exist (a 404, not a 403, so ids cannot be probed)."""
        self._full_bodies()
        run_id = wire.response_run_id(rid)
        if run_id is None:
            raise _not_found(rid)
        url = self.gateway.config.store.url
        record = await asyncio.to_thread(_read, url, run_id)
        if record is None:  # answered a moment ago: its record may still be on its way
            await asyncio.to_thread(self.gateway.writer.flush)
            record = await asyncio.to_thread(_read, url, run_id)
        if record is None and worker_identity().count > 1:
            record = await _from_sibling(url, run_id, self.gateway.config.store.flush_interval_s)
        if record is None or record.get("wire") != wire.WIRE:
            raise _not_found(rid)
        if self.gateway.guard.enabled and record.get("key_id") != owner:
            raise _not_found(rid)
        notes = (record.get("attrs") or {}).get("responses") or {}
        if notes.get("deleted"):
            raise _not_found(rid, " (it was deleted)")
        if notes.get("store") is False:
            raise _not_found(rid, " (it was created with store: false)")
        if not isinstance(record.get("request_body"), dict):
            raise _not_found(rid, " (its bodies were not recorded)")
        return record

    async def _retrieve(self, send: Send, rid: str, owner: str | None) -> None:
        try:
            record = await self._record(rid, owner)
        except ApiError as exc:
            return await _fail(send, exc)
        await _send_json(send, 200, from_record(record))

    async def _delete(self, send: Send, rid: str, owner: str | None) -> None:
        try:
            await self._record(rid, owner)
            run_id = wire.response_run_id(rid)
            assert run_id is not None
            erased = await asyncio.to_thread(self.gateway.writer.erase_bodies, run_id)
        except StoreError:
            error = ApiError(503, "the record cannot be written now", code="store_unavailable")
            return await _fail(send, error)
        except ApiError as exc:
            return await _fail(send, exc)
        if not erased:
            return await _fail(send, _not_found(rid))
        await _send_json(send, 200, {"id": rid, "object": "response", "deleted": True})

    # -- POST -----------------------------------------------------------------------------------

    async def _parse(
        self, receive: Receive
    ) -> tuple[dict[str, Any] | None, ApiError | Exception | None]:
        gw = self.gateway
        limit = gw.config.server.max_body_bytes
        body: dict[str, Any] | None = None
        try:
            raw = await _read_body(receive, limit, gw.config.server.body_read_timeout_s)
            body = parse_body(raw)
            wire.check(body)
            model = gw.models.get(body["model"])
            if model is None:
                known = ", ".join(sorted(gw.models))
                raise ApiError(
                    404,
                    f"model {quote(body['model'])} does not exist here (served: {known})",
                    code="model_not_found",
                    param="model",
                )
            self._builtin_tools(body, model.deployments)
        except _TooLarge:
            return body, ApiError(413, f"request body exceeds {limit} bytes", code="body_too_large")
        except TimeoutError:
            seconds = gw.config.server.body_read_timeout_s
            return body, ApiError(
                408,
                f"request body not received within {seconds:g} s",
                code="request_timeout",
                headers={"connection": "close"},
            )
        except ApiError as exc:
            return body, exc
        except Exception as exc:  # a bug in the checks: recorded like any failure
            return body, exc
        return body, None

    def _builtin_tools(self, body: dict[str, Any], deployments: tuple[str, ...]) -> None:
        """Built-in tools run upstream: every deployment of the model must speak Responses."""
        named = wire.builtin_tools(body)
        if not named:
            return
        deps = self.gateway.config.deployments
        other = [d for d in deployments if deps[d].api != "responses"]
        if other:
            i, kind = named[0]
            raise ApiError(
                400,
                f"`tools[{i}]` is the built-in tool {kind}, which runs only on an upstream"
                f" called through the Responses API (`api: responses`); model"
                f" {quote(body['model'])} may also run on {', '.join(other)}",
                code="unsupported",
                param=f"tools[{i}]",
            )

    async def _turn(self, body: dict[str, Any], owner: str | None) -> wire.Turn:
        history = None
        prev = body.get("previous_response_id")
        if prev is not None:
            try:
                record = await self._record(prev, owner)
            except ApiError as exc:
                if exc.status == 404:
                    raise ApiError(
                        400,
                        f"previous response {quote(prev)} not found: {exc.message}",
                        code="previous_response_not_found",
                        param="previous_response_id",
                    ) from None
                raise ApiError(exc.status, exc.message, code=exc.code,
                               param="previous_response_id") from None  # fmt: skip
            history = wire.history_of(record)
        return wire.to_chat(body, history)

    async def _create(self, scope: Scope, receive: Receive, send: Send) -> None:
        gw = self.gateway
        body, error = await self._parse(receive)
        turn: wire.Turn | None = None
        if error is None:
            assert body is not None
            try:
                turn = await self._turn(body, self._owner(scope))
            except ApiError as exc:
                error = exc
            except Exception as exc:
                error = exc
        model_name = body.get("model") if body is not None else None
        stream = body is not None and body.get("stream") is True
        run = gw.new_run(
            model_name if isinstance(model_name, str) else "", Operation.CHAT, stream, body
        )
        run.wire = wire.WIRE
        headers = header_map(scope)
        for key in ("traceparent", "tracestate"):
            if key in headers:
                run.client[key] = headers[key]
        rid = {"x-turnout-request-id": run.id}
        caller = None
        if error is None or isinstance(error, ApiError):
            try:  # the key first: a client without one hears 401 whatever it sent
                chat = turn.chat if error is None and turn is not None else None
                caller, limits = await admit(gw, headers, chat, run)
                rid.update(limits)
            except ApiError as exc:
                error = exc
            except Exception as exc:  # a bug in the checks: recorded like any failure
                error = exc
        if isinstance(error, ApiError):
            reply = gw.engine.reject(run, error)
            return await _send_json(send, reply.status, reply.body, {**rid, **reply.headers})
        if error is not None:
            reply = internal_error(run, error)
            gw.engine.finish(run)
            return await _send_json(send, reply.status, reply.body, {**rid, **reply.headers})
        assert body is not None and turn is not None
        run.request_body = turn.chat  # what turnout ran: its replay and its conversation
        notes = dict(turn.notes, model=body["model"])
        run.attrs["responses"] = notes
        request = wire.to_request(turn, body, headers)
        request.caller = caller
        settings = echo(body["model"], turn.chat, notes)
        if stream:
            return await self._stream(run, receive, send, request, rid, settings)
        reply = await self._complete(run, receive, request)
        if reply is None:
            return
        if reply.status == 200:
            tokens = (run.prompt_tokens, run.completion_tokens)
            out = from_chat(run.id, run.started, settings, reply.body, tokens)
            return await _send_json(send, 200, out, {**rid, **reply.headers})
        await _send_json(send, reply.status, reply.body, {**rid, **reply.headers})

    async def _complete(self, run: Run, receive: Receive, request: Any) -> Reply | None:
        gw = self.gateway
        task = asyncio.current_task()
        assert task is not None
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, task, gone))
        try:
            return await gw.engine.complete(run, gw.models[run.model], request)
        except asyncio.CancelledError:
            if gone.is_set():
                task.uncancel()
                return None  # the client went away; the engine recorded `cancelled`
            raise
        finally:
            watcher.cancel()

    async def _stream(
        self,
        run: Run,
        receive: Receive,
        send: Send,
        request: Any,
        rid: dict[str, str],
        settings: dict[str, Any],
    ) -> None:
        gw = self.gateway
        task = asyncio.current_task()
        assert task is not None
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, task, gone))
        events = gw.engine.stream(run, gw.models[run.model], request)
        out = ResponseEvents(run.id, run.started, settings)
        try:
            async for piece in _rendered(events, out):
                if isinstance(piece, Reply):
                    return await _send_json(send, piece.status, piece.body,
                                            {**rid, **piece.headers})  # fmt: skip
                if isinstance(piece, StreamHead):
                    start = _SSE_HEADERS + _headers({**rid, **piece.headers})
                    await send({"type": "http.response.start", "status": 200, "headers": start})
                    continue
                await send({"type": "http.response.body", "body": piece, "more_body": True})
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


async def _rendered(
    events: AsyncIterator[Reply | StreamHead | bytes], out: ResponseEvents
) -> AsyncIterator[Reply | StreamHead | bytes]:
    """The engine's stream as Responses events: created/in_progress right after the head."""
    started = False
    async for item in events:
        if isinstance(item, Reply):
            yield item
            return
        if isinstance(item, StreamHead):
            started = True
            yield item
            yield out.start()
            continue
        rendered = out.feed(item)
        if rendered:
            yield rendered
    if started and not out.ended:
        yield out.fail({"message": "the stream ended without an answer", "code": "server_error"})


async def _from_sibling(url: str, run_id: str, flush_s: float) -> dict[str, Any] | None:
    """Another worker may have answered it (`serve --workers`): its writer has it on the
    record within a flush interval; two and a margin are waited for."""
    step = max(flush_s / 4, 0.01)
    for _ in range(9):
        await asyncio.sleep(step)
        record = await asyncio.to_thread(_read, url, run_id)
        if record is not None:
            return record
    return None


def _read(url: str, run_id: str) -> dict[str, Any] | None:
    try:
        with open_reader(url) as reader:
            record = reader.request(run_id)
    except RecordNotFound:
        return None
    except StoreError:
        raise ApiError(503, "the record cannot be read now", code="store_unavailable") from None
    return record if record.get("id") == run_id else None


async def _fail(send: Send, error: ApiError) -> None:
    await _send_json(send, error.status, error.body(), {"x-should-retry": "false", **error.headers})
