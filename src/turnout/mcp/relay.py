"""One client session relayed to one server, with the guard in the middle.

Everything is forwarded as it came — resources, prompts, completions, logging, sampling,
elicitation, roots, progress, cancellation — except what the guard must see: the handshake (its
instructions), `tools/list` (unapproved tools hidden), `tools/call` (refused, checked, recorded)
and `notifications/tools/list_changed` (the guard relists before any further call passes).
Requests the client sends get fresh ids on the server side, so the guard's own requests never
collide with the client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any, TextIO

import anyio
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import (
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
)

from turnout.lifecycle.states import State
from turnout.mcp.arguments import argument_problem
from turnout.mcp.canonical import tool_hash
from turnout.mcp.config import ServerSpec
from turnout.mcp.egress.recorder import EgressRecorder
from turnout.mcp.egress.watch import EgressWatch
from turnout.mcp.guard import Guard, Refusal
from turnout.mcp.identity import fetches_at_launch, resolve_identity
from turnout.mcp.lockfile import Observation
from turnout.mcp.policy import check_arguments, tool_allowed
from turnout.mcp.record import Recorder, ToolCallRecord, record_holds, record_server_hold
from turnout.mcp.upstream import UpstreamClosed, UpstreamLink, open_transport

log = logging.getLogger("turnout.mcp.proxy")

METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
CONNECTION_CLOSED = -32000
REQUEST_TIMEOUT = -32001
LOCK_POLL_S = 1.0


def _key(request_id: Any) -> tuple[str, Any]:
    return (type(request_id).__name__, request_id)  # JSON-RPC ids 1 and "1" are different ids


class Relay:
    def __init__(
        self,
        spec: ServerSpec,
        guard: Guard,
        recorder: Recorder,
        *,
        transport: str,
        errlog: TextIO | None = None,
    ):
        self.spec = spec
        self.guard = guard
        self.recorder = recorder
        self.transport = transport
        self.errlog = errlog
        self.session_id = secrets.token_hex(6)
        self.package: dict[str, Any] = {}
        self._down: Any = None
        self._link: UpstreamLink | None = None
        self._watch: EgressWatch | None = None
        self._server_caps: dict[str, Any] = {}
        self._server_info: dict[str, Any] | None = None
        self._instructions: str | None = None
        self._current: dict[str, dict[str, Any]] = {}  # tool name -> definition, as last listed
        self._ready = asyncio.Event()  # the guard's first listing is done
        self._fresh = asyncio.Event()  # no list_changed is waiting for a relist
        self._fresh.set()
        self._tasks: dict[tuple[str, Any], asyncio.Task[None]] = {}
        self._upstream_ids: dict[tuple[str, Any], int] = {}
        self._progress: dict[Any, Any] = {}  # progress token -> client request id
        self._statuses: dict[str, str] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._late_refusal: Refusal | None = None  # the package launched is not the one pinned

    # -- the session ------------------------------------------------------------------------------

    async def run(self, down_read: Any, down_write: Any) -> None:
        self._down = down_write
        self.package = await asyncio.to_thread(resolve_identity, self.spec)
        self.guard.refresh()
        refusal = self.guard.server_refusal(self.package)
        if refusal is not None:
            log.error("%s", refusal.message)
            record_server_hold(self.recorder, self.guard, self.package, refusal)
            await self._serve_refusal(down_read, refusal)
            return
        recorder: EgressRecorder | None = None
        env_extra: dict[str, str] = {}
        if self.spec.egress != "off" and self.spec.transport == "stdio":
            self._watch = EgressWatch(self.guard, self.spec.egress, self.spec.egress_first_use)
            recorder = EgressRecorder(self._watch.decide)
            await recorder.start()
            env_extra = recorder.env(self.spec.env.get("NODE_OPTIONS", ""))
        try:
            async with contextlib.AsyncExitStack() as stack:
                transport = open_transport(self.spec, env_extra=env_extra, errlog=self.errlog)
                try:
                    r, w = await stack.enter_async_context(transport)
                except (OSError, ValueError) as exc:
                    # A server that cannot start: the client hears why instead of a dead pipe.
                    why = f"turnout: could not start server '{self.guard.name}': {exc}"
                    log.error("%s", why)
                    await self._serve_refusal(down_read, Refusal("launch_failed", why))
                    return
                self._link = UpstreamLink(r, w, self._from_server)
                async with anyio.create_task_group() as tg:

                    async def until_server_closes() -> None:
                        await self._link.run()  # type: ignore[union-attr]
                        tg.cancel_scope.cancel()

                    tg.start_soon(until_server_closes)
                    tg.start_soon(self._watch_lock)
                    await self._from_client(down_read)
                    tg.cancel_scope.cancel()
        finally:
            for task in list(self._tasks.values()):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            if recorder is not None:
                await recorder.stop()

    async def _from_client(self, down_read: Any) -> None:
        async for item in down_read:
            if isinstance(item, Exception):
                log.warning("client sent an unreadable message: %s", item)
                continue
            msg = item.message
            if isinstance(msg, JSONRPCRequest):
                self._dispatch(msg)
            elif isinstance(msg, JSONRPCNotification):
                await self._client_notification(msg)
            else:  # the client's answer to a server request: ids were never changed
                await self._upstream.send(msg)

    def _dispatch(self, msg: JSONRPCRequest) -> None:
        handler = {
            "tools/call": self._tool_call,
            "tools/list": self._tools_list,
            "initialize": self._initialize,
            "server/discover": self._discover,
        }.get(msg.method, self._forward)
        key = _key(msg.id)
        token = ((msg.params or {}).get("_meta") or {}).get("progressToken")
        if token is not None:
            self._progress[token] = msg.id

        def done(_task: asyncio.Task[None]) -> None:
            self._tasks.pop(key, None)
            if token is not None:
                self._progress.pop(token, None)

        task = asyncio.create_task(handler(msg))
        self._tasks[key] = task
        task.add_done_callback(done)

    async def _client_notification(self, msg: JSONRPCNotification) -> None:
        params = msg.params or {}
        if msg.method == "notifications/cancelled":
            key = _key(params.get("requestId"))
            rid = self._upstream_ids.get(key)
            task = self._tasks.get(key)
            if rid is not None:
                await self._upstream.notify("notifications/cancelled", {**params, "requestId": rid})
            if task is not None:
                task.cancel(params.get("reason") or "cancelled by the client")
            return
        await self._upstream.send(msg)
        if msg.method == "notifications/initialized":
            self._spawn(self._first_listing())

    async def _from_server(self, item: SessionMessage) -> None:
        msg = item.message
        if isinstance(msg, JSONRPCNotification):
            if msg.method == "notifications/tools/list_changed":
                # No call passes until the guard has seen the new list.
                self._fresh.clear()
                self._spawn(self._relist(forward=msg))
                return
            related = None
            if msg.method == "notifications/progress":
                related = self._progress.get((msg.params or {}).get("progressToken"))
            await self._send(msg, related)
        elif isinstance(msg, JSONRPCRequest):
            # Sampling, elicitation, roots: belong to the call in flight when there is just one.
            calls = [k[1] for k, t in self._tasks.items() if not t.done()]
            await self._send(msg, calls[0] if len(calls) == 1 else None)
        # A response nobody waits for (its request was cancelled) is dropped.

    # -- what the guard looks at ------------------------------------------------------------------

    async def _initialize(self, msg: JSONRPCRequest) -> None:
        reply = await self._roundtrip(msg)
        if isinstance(reply, JSONRPCResponse):
            result = reply.result
            self._server_caps = result.get("capabilities") or {}
            self._server_info = result.get("serverInfo")
            self._instructions = result.get("instructions")
            if not self.guard.instructions_approved(self._instructions):
                # Instructions go straight into the model's context: changed ones are withheld.
                log.warning(
                    "server '%s': instructions changed since they were approved; withheld",
                    self.guard.name,
                )
                reply = JSONRPCResponse(
                    jsonrpc="2.0",
                    id=reply.id,
                    result={k: v for k, v in result.items() if k != "instructions"},
                )
        await self._answer(msg.id, reply)

    async def _discover(self, msg: JSONRPCRequest) -> None:
        # The guard speaks the initialize handshake; clients fall back to it on this error.
        error = ErrorData(
            code=METHOD_NOT_FOUND, message="server/discover is not supported by turnout"
        )
        await self._send(JSONRPCError(jsonrpc="2.0", id=msg.id, error=error))

    async def _first_listing(self) -> None:
        if self.package.get("installed") is False or fetches_at_launch(self.spec):
            # npx may fetch (a newer version) while launching: identify what actually runs.
            self.package = await asyncio.to_thread(resolve_identity, self.spec)
            self._late_refusal = self.guard.server_refusal(self.package)
            if self._late_refusal is not None:
                log.error("%s", self._late_refusal.message)
        try:
            if "tools" in self._server_caps:
                tools = await self._upstream.list_tools()
                self._current = {str(t.get("name")): t for t in tools}
            self._observe()
            if self._watch is not None:
                self._watch.settle_background()
        except Exception as exc:  # the session goes on; unlisted tools stay refused
            log.warning("server '%s': listing tools failed: %s", self.guard.name, exc)
        finally:
            self._statuses = self._status_map()
            self._record_held()
            self._ready.set()

    async def _relist(self, forward: JSONRPCNotification) -> None:
        try:
            tools = await self._upstream.list_tools()
            self._current = {str(t.get("name")): t for t in tools}
            self._observe()
            self._statuses = self._status_map()
            self._record_held()
        except Exception as exc:
            log.warning("server '%s': relisting tools failed: %s", self.guard.name, exc)
            self._current = {}  # fail closed: nothing known, nothing callable
        finally:
            self._fresh.set()
        await self._send(forward)

    def _observe(self) -> None:
        obs = Observation(
            launch=self.spec.launch(),
            package=self.package,
            server_info=_info(self._server_info),
            instructions=self._instructions,
            tools=dict(self._current),
        )
        for text in self.guard.record_observation(obs):
            log.warning("server '%s': %s", self.guard.name, text)

    def _status_map(self) -> dict[str, str]:
        return {name: self.guard.tool_status(d) for name, d in self._current.items()}

    def _record_held(self) -> None:
        record_holds(self.recorder, self.guard, self._current, self._late_refusal)

    async def _watch_lock(self) -> None:
        """When a person approves something, tell the client to list the tools again."""
        while True:
            await asyncio.sleep(LOCK_POLL_S)
            if self.guard.refresh() and self._ready.is_set():
                statuses = self._status_map()
                if statuses != self._statuses:
                    self._statuses = statuses
                    self._record_held()
                    await self._send(
                        JSONRPCNotification(
                            jsonrpc="2.0", method="notifications/tools/list_changed"
                        )
                    )

    async def _tools_list(self, msg: JSONRPCRequest) -> None:
        await self._ready.wait()
        reply = await self._roundtrip(msg)
        if isinstance(reply, JSONRPCResponse):
            tools = [t for t in reply.result.get("tools") or [] if isinstance(t, dict)]
            listed = {str(t.get("name")): t for t in tools}
            if any(self._current.get(n) != d for n, d in listed.items()):
                self._current.update(listed)
                self._observe()
            self.guard.refresh()
            shown, hidden = self.guard.visible(tools)
            if self._late_refusal is not None:
                shown, hidden = [], [str(t.get("name")) for t in tools]
            if hidden:
                log.warning(
                    "server '%s': held back until approved: %s", self.guard.name, ", ".join(hidden)
                )
                self._record_held()
            reply = JSONRPCResponse(
                jsonrpc="2.0", id=reply.id, result={**reply.result, "tools": shown}
            )
        await self._answer(msg.id, reply)

    async def _tool_call(self, msg: JSONRPCRequest) -> None:
        params = msg.params or {}
        name = str(params.get("name"))
        rec = ToolCallRecord(
            self.guard.name,
            name,
            params,
            {"transport": self.transport, "session": self.session_id, "mcp_id": msg.id},
        )
        key = _key(msg.id)
        egress = None
        try:
            await self._ready.wait()
            await self._fresh.wait()
            self.guard.refresh()
            refusal = self._refusal(name, params.get("arguments"))
            if refusal is not None:
                rec.refuse(State.BLOCKED, refusal.reason, refusal.message)
                log.warning("server '%s': refused %s: %s", self.guard.name, name, refusal.message)
                await self._send_error(msg.id, refusal.error(self.guard.name, name))
                return
            problem = self._argument_problem(name, params.get("arguments"))
            if problem is not None:
                rec.refuse(State.REJECTED, "invalid_arguments", problem)
                error = {
                    "code": INVALID_PARAMS,
                    "message": f"invalid arguments for {name}: {problem}",
                }
                await self._send_error(msg.id, error)
                return
            rec.forward()
            if self._watch is not None:
                egress = self._watch.begin(rec.run.id, name)
            rid, future = await self._upstream.start("tools/call", params)
            self._upstream_ids[key] = rid
            try:
                reply = await asyncio.wait_for(future, self.spec.call_timeout_s)
            except TimeoutError:
                self._upstream.forget(rid)
                await self._upstream.notify(
                    "notifications/cancelled", {"requestId": rid, "reason": "timeout"}
                )
                rec.failed("timeout", timeout_s=self.spec.call_timeout_s)
                seconds = self.spec.call_timeout_s
                error = {
                    "code": REQUEST_TIMEOUT,
                    "message": f"turnout: {name} timed out after {seconds}s",
                }
                await self._send_error(msg.id, error)
                return
            rec.settle(reply, list(egress.refused) if egress is not None else [])
            await self._answer(msg.id, reply)
        except asyncio.CancelledError:
            rec.cancelled("cancelled by the client")
            raise
        except UpstreamClosed as exc:
            rec.failed("server_closed")
            await self._send_error(
                msg.id, {"code": CONNECTION_CLOSED, "message": f"turnout: {exc}"}
            )
        finally:
            self._upstream_ids.pop(key, None)
            if self._watch is not None and egress is not None:
                self._watch.end(rec.run.id, ok=rec.run.state is State.COMPLETED)
            if not rec.run.state.terminal:
                rec.failed("proxy_error")
            self.recorder.submit(rec)

    def _refusal(self, name: str, arguments: Any) -> Refusal | None:
        refusal = self._late_refusal or self.guard.call_refusal(name, self._current)
        if refusal is not None:
            return refusal
        why = tool_allowed(self.spec.policy, name)
        if why is None and isinstance(arguments, dict):
            why = check_arguments(self.spec.policy, name, arguments)
        return None if why is None else Refusal("policy", f"turnout: refused by policy: {why}")

    def _argument_problem(self, name: str, arguments: Any) -> str | None:
        if not self.spec.validate_arguments:
            return None
        definition = self._current[name]
        schema = definition.get("inputSchema")
        return argument_problem(
            tool_hash(definition), schema, arguments if arguments is not None else {}
        )

    # -- plumbing ---------------------------------------------------------------------------------

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._background.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._background.discard)

    @property
    def _upstream(self) -> UpstreamLink:
        assert self._link is not None
        return self._link

    async def _forward(self, msg: JSONRPCRequest) -> None:
        await self._answer(msg.id, await self._roundtrip(msg))

    async def _roundtrip(self, msg: JSONRPCRequest) -> JSONRPCResponse | JSONRPCError:
        key = _key(msg.id)
        try:
            rid, future = await self._upstream.start(msg.method, msg.params)
        except UpstreamClosed as exc:
            return JSONRPCError(jsonrpc="2.0", id=msg.id, error=_closed(exc))
        self._upstream_ids[key] = rid
        try:
            return await future
        except UpstreamClosed as exc:
            return JSONRPCError(jsonrpc="2.0", id=msg.id, error=_closed(exc))
        finally:
            self._upstream_ids.pop(key, None)

    async def _answer(self, client_id: Any, reply: JSONRPCResponse | JSONRPCError) -> None:
        if isinstance(reply, JSONRPCResponse):
            out: JSONRPCMessage = JSONRPCResponse(jsonrpc="2.0", id=client_id, result=reply.result)
        else:
            out = JSONRPCError(jsonrpc="2.0", id=client_id, error=reply.error)
        await self._send(out)

    async def _send_error(self, client_id: Any, error: dict[str, Any]) -> None:
        await self._send(JSONRPCError(jsonrpc="2.0", id=client_id, error=ErrorData(**error)))

    async def _send(self, msg: JSONRPCMessage, related: Any = None) -> None:
        metadata = (
            ServerMessageMetadata(related_request_id=related) if related is not None else None
        )
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._down.send(SessionMessage(msg, metadata=metadata))

    async def _serve_refusal(self, down_read: Any, refusal: Refusal) -> None:
        """A blocked server is never launched: every request gets the reason, pings excepted."""
        async for item in down_read:
            if isinstance(item, Exception) or not isinstance(item.message, JSONRPCRequest):
                continue
            msg = item.message
            if msg.method == "ping":
                await self._send(JSONRPCResponse(jsonrpc="2.0", id=msg.id, result={}))
                continue
            if msg.method == "tools/call":
                params = msg.params or {}
                rec = ToolCallRecord(
                    self.guard.name,
                    str(params.get("name")),
                    params,
                    {"transport": self.transport, "session": self.session_id, "mcp_id": msg.id},
                )
                rec.refuse(State.BLOCKED, refusal.reason, refusal.message)
                self.recorder.submit(rec)
            await self._send_error(msg.id, refusal.error(self.guard.name))


def _closed(exc: BaseException) -> ErrorData:
    return ErrorData(code=CONNECTION_CLOSED, message=f"turnout: {exc}")


def _info(info: Any) -> dict[str, Any] | None:
    if not isinstance(info, dict):
        return None
    return {k: info[k] for k in ("name", "version") if k in info}
