"""A Backend that injects model-call faults by position, around any other backend.

It sits outside the cassette layer: injected failures are never recorded, and a faulted answer is
derived from the real (or replayed) one, so faults work with live and replayed runs alike. A fault
that changes or cuts an answer still lets the cassette see the whole real answer, and gives its
slot back (`forget`), so the retry it causes replays that answer instead of recording another.
"""

from __future__ import annotations

import contextvars
import copy
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import jsonschema
import orjson

from turnout.backends.base import (
    Backend,
    Completion,
    Failure,
    Operation,
    StreamChunk,
    UpstreamError,
    UpstreamRequest,
)
from turnout.lifecycle.stream import Accumulator
from turnout.routing.router import conversation_id
from turnout.testing.cassette import event_bytes
from turnout.testing.faults import Fault, FaultKind, FaultPlan

_RAISED = (FaultKind.RATE_LIMITED, FaultKind.SERVER_ERROR, FaultKind.TIMEOUT)

# The request's conversation id from its header: the in-process gateway sets it, because the
# backend seam sees the body (where `metadata.conversation_id` also works) but not the headers.
CONVERSATION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "turnout_testing_conversation", default=None
)


def conversation_of(request: UpstreamRequest) -> str | None:
    return CONVERSATION.get() or conversation_id(request.body, {})


class FaultBackend:
    def __init__(self, inner: Backend, plan: FaultPlan, name: str | None = None) -> None:
        self.inner = inner
        self.plan = plan
        self.name = name or inner.name

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def ready(self) -> bool:
        return self.inner.ready()

    def _discard(self, request: UpstreamRequest) -> None:
        forget = getattr(self.inner, "forget", None)
        if forget is not None:
            forget(request.request_id)

    async def complete(self, request: UpstreamRequest) -> Completion:
        fault = self.plan.model_call(request.request_id, conversation_of(request))
        if fault is None:
            return await self.inner.complete(request)
        if fault.kind in _RAISED:
            raise _failure(fault)
        done = await self.inner.complete(request)
        self._discard(request)
        if fault.kind is FaultKind.BROKEN_STREAM:
            raise UpstreamError(Failure.BROKEN_STREAM, f"connection dropped: {fault.describe()}")
        body = copy.deepcopy(done.body)
        choice = body["choices"][0]
        if request.operation is Operation.CHAT:
            message = choice.setdefault("message", {"role": "assistant"})
            choice["finish_reason"] = self._mutate(fault, request, message)
        else:
            text = {"content": choice.get("text") or ""}
            choice["finish_reason"] = self._mutate(fault, request, text)
            choice["text"] = text["content"] or ""
        return Completion(body, done.usage)

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamChunk]:
        fault = self.plan.model_call(request.request_id, conversation_of(request))
        source = self.inner.stream(request)
        try:
            if fault is None:
                async for chunk in source:
                    yield chunk
                return
            if fault.kind in _RAISED:
                raise _failure(fault)
            if fault.kind is FaultKind.BROKEN_STREAM:
                async for chunk in _break(source, fault, lambda: self._discard(request)):
                    yield chunk
                return
            mutated = await self._mutated_stream(fault, request, source)
            self._discard(request)
            for chunk in mutated:
                yield chunk
        finally:
            await source.aclose()  # type: ignore[attr-defined]

    async def _mutated_stream(
        self, fault: Fault, request: UpstreamRequest, source: AsyncIterator[StreamChunk]
    ) -> list[StreamChunk]:
        """Collect the whole answer, change it like a completion, and stream it again."""
        acc = Accumulator(request.operation)
        first: dict[str, Any] | None = None
        async for chunk in source:
            first = first or chunk.data
            acc.add(chunk.data)
        message = acc.message()
        finish = self._mutate(fault, request, message)
        envelope = {k: v for k, v in (first or {}).items() if k in ("id", "object", "created")}
        envelope.setdefault("object", "chat.completion.chunk")
        envelope.setdefault("created", int(time.time()))
        envelope["model"] = (first or {}).get("model") or request.body.get("model")
        return _synthesize(request.operation, envelope, message, finish, acc.usage)

    def _mutate(self, fault: Fault, request: UpstreamRequest, message: dict[str, Any]) -> str:
        """Change `message` in place as `fault` says; returns the finish_reason to report."""
        kind = fault.kind
        calls: list[dict[str, Any]] = message.get("tool_calls") or []
        if kind is FaultKind.EMPTY_CONTENT:
            message["content"] = ""
            message.pop("tool_calls", None)
            return "stop"
        if kind is FaultKind.TRUNCATED:
            content = message.get("content") or ""
            words = re.findall(r"\s*\S+", content)
            message["content"] = "".join(words[: len(words) // 2]) if content else content
            for call in calls:
                args = call["function"].get("arguments") or ""
                call["function"]["arguments"] = args[: len(args) // 2]
            return "length"
        tools = _tool_schemas(request.body)
        if not tools:
            msg = f"fault {fault} cannot apply: the request offers no tools"
            self.plan.problem(msg)
            raise UpstreamError(Failure.CLIENT_ERROR, msg, status=400)
        if not calls:
            name = _forced_tool(request.body) or next(iter(tools))
            calls = [
                {"id": f"call_fault{self.plan.model_calls}", "type": "function",
                 "function": {"name": name, "arguments": "{}"}}
            ]  # fmt: skip
            message["tool_calls"] = calls
            message["content"] = None
        fn = calls[0]["function"]
        if kind is FaultKind.MALFORMED_TOOL_CALL:
            args = fn.get("arguments") or "{}"
            fn["arguments"] = args[: max(1, len(args) // 2)] if len(args) > 2 else '{"'
        else:
            fn["arguments"] = self._violating(fault, fn, tools.get(fn["name"]))
        return "tool_calls"

    def _violating(self, fault: Fault, fn: dict[str, Any], schema: dict[str, Any] | None) -> str:
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            args = {}
        bad = violate(schema or {}, args if isinstance(args, dict) else {})
        if bad is None:
            msg = f"fault {fault} cannot apply: tool {fn['name']!r} accepts any arguments"
            self.plan.problem(msg)
            raise UpstreamError(Failure.CLIENT_ERROR, msg, status=400)
        return orjson.dumps(bad).decode()


def violate(schema: dict[str, Any], args: dict[str, Any]) -> Any:
    """Arguments close to `args` that `schema` rejects, or None if it accepts anything."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    candidates: list[Any] = []
    required = [r for r in schema.get("required") or () if isinstance(r, str)]
    if required:
        candidates.append({k: v for k, v in args.items() if k != required[0]})
    wrong = {"string": 12345, "integer": "twelve", "number": "twelve", "boolean": "yes",
             "array": "not-a-list", "object": "not-an-object"}  # fmt: skip
    for name, spec in (schema.get("properties") or {}).items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if isinstance(kind, str) and kind in wrong:
            candidates.append({**args, name: wrong[kind]})
        if isinstance(spec, dict) and spec.get("enum"):
            candidates.append({**args, name: "not-one-of-the-allowed-values"})
    candidates += ["not-an-object", []]
    return next((c for c in candidates if not validator.is_valid(c)), None)


def _tool_schemas(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for tool in body.get("tools") or ():
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            out[fn["name"]] = fn.get("parameters") or {}
    return out


def _forced_tool(body: dict[str, Any]) -> str | None:
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return name if isinstance(name, str) else None
    return None


def _failure(fault: Fault) -> UpstreamError:
    why = fault.describe()
    if fault.kind is FaultKind.RATE_LIMITED:
        return UpstreamError(
            Failure.RATE_LIMITED, f"upstream 429: {why}", status=429,
            retry_after_s=fault.retry_after_s,
        )  # fmt: skip
    if fault.kind is FaultKind.SERVER_ERROR:
        failure = Failure.OVERLOADED if fault.status in (503, 529) else Failure.SERVER_ERROR
        return UpstreamError(failure, f"upstream {fault.status}: {why}", status=fault.status)
    # A timeout is the classified failure, raised at once: tests never wait for a clock.
    return UpstreamError(Failure.TIMEOUT, f"upstream timed out: {why}")


def _has_token(data: dict[str, Any]) -> bool:
    for c in data.get("choices") or ():
        delta = c.get("delta") or {}
        if c.get("text") or delta.get("content") or delta.get("tool_calls"):
            return True
    return False


async def _break(
    source: AsyncIterator[StreamChunk], fault: Fault, discard: Callable[[], None]
) -> AsyncIterator[StreamChunk]:
    """Pass `after_chunks` token-bearing chunks through, then fail like a dropped connection.

    The rest of the source is still read (and dropped): a cassette beneath records the whole
    real answer, never the cut one, so replaying without the fault gets the whole answer."""
    tokens = 0
    broken = False
    try:
        async for chunk in source:
            if not broken and _has_token(chunk.data):
                broken = tokens >= fault.after_chunks
                tokens += 1
            if not broken:
                yield chunk
    except UpstreamError:
        if not broken:
            raise  # a real failure before the fault's place is what the reader sees
    discard()
    raise UpstreamError(Failure.BROKEN_STREAM, f"upstream stream broke: {fault.describe()}")


def _synthesize(
    op: Operation, envelope: dict[str, Any], message: dict[str, Any], finish: str, usage: Any
) -> list[StreamChunk]:
    """A plausible SSE stream for a whole answer: role, content pieces, tool calls, finish."""

    def chunk(payload: dict[str, Any], finish_reason: str | None = None) -> StreamChunk:
        if op is Operation.CHAT:
            choice = {"index": 0, "delta": payload, "finish_reason": finish_reason}
        else:
            choice = {
                "index": 0,
                "text": payload.get("content", ""),
                "finish_reason": finish_reason,
            }
        data = {**envelope, "choices": [choice]}
        return StreamChunk(data, event_bytes(data))

    out: list[StreamChunk] = []
    if op is Operation.CHAT:
        out.append(chunk({"role": "assistant", "content": ""}))
    for piece in re.findall(r"\s*\S+", message.get("content") or ""):
        out.append(chunk({"content": piece}))
    for i, call in enumerate(message.get("tool_calls") or ()):
        head = {"index": i, "id": call.get("id"), "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}  # fmt: skip
        out.append(chunk({"tool_calls": [head]}))
        args = call["function"].get("arguments") or ""
        if args:
            out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args}}]}))
    out.append(chunk({}, finish))
    tail = {**envelope, "choices": [], "usage": {
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens}}  # fmt: skip
    out.append(StreamChunk(tail, event_bytes(tail)))
    return out
