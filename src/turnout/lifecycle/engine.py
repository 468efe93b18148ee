"""Drives a Journey against the backends, in one piece or as a stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from turnout.backends.base import Operation, StreamChunk, UpstreamError, UpstreamRequest, Usage
from turnout.config import ModelConfig
from turnout.errors import ApiError
from turnout.lifecycle.journey import Fleet, Journey, fresh_body
from turnout.lifecycle.redaction import StreamRestorer
from turnout.lifecycle.run import Run
from turnout.lifecycle.states import State
from turnout.lifecycle.stream import Accumulator, error_event

DONE = b"data: [DONE]\n\n"
log = logging.getLogger("turnout.lifecycle")


@dataclass(slots=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StreamHead:
    """Sent once, before the first byte of a stream: the headers the client will see."""

    headers: dict[str, str]


class Engine:
    def __init__(self, fleet: Fleet, on_finish: Callable[[Run], None]) -> None:
        self.fleet = fleet
        self._on_finish = on_finish

    def finish(self, run: Run) -> None:
        self._on_finish(run)

    def reject(self, run: Run, error: ApiError) -> Reply:
        """Bad input: recorded like every request, and nothing else happens."""
        run.error = error.message
        run.http_status = error.status
        run.transition(State.REJECTED, status=error.status, error=error.message)
        self.finish(run)
        return Reply(error.status, error.body(), {"x-turnout-outcome": "rejected", **error.headers})

    async def complete(
        self,
        run: Run,
        model: ModelConfig,
        body: dict[str, Any],
        op: Operation,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        j = Journey(self.fleet, run, model, fresh_body(body), op, headers)
        try:
            reply = await self._complete(j)
        except Exception as exc:  # a bug in turnout: this request fails, nothing else does
            reply = internal_error(run, exc, j)
        except BaseException as exc:
            _abandon(j, exc)
            raise
        finally:
            self.finish(run)
        run.http_status = reply.status
        return reply

    async def _complete(self, j: Journey) -> Reply:
        dep = j.route()
        why: dict[str, Any] = {}
        while dep is not None:
            if not await j.begin(dep, **why):
                break
            why = {}
            backend = self.fleet.backends[dep]
            request = UpstreamRequest(j.operation, j.upstream_body(dep), j.run.id)
            try:
                done = await backend.complete(request)
            except UpstreamError as err:
                dep = await j.after_failure(err)
                continue
            redaction = j.redaction_for(dep)
            if redaction is not None:
                redaction.restore_response(done.body)
            choice = done.body["choices"][0] if isinstance(done.body["choices"][0], dict) else {}
            finish = choice.get("finish_reason")
            j.attempt_succeeded(done.usage, finish)
            message = choice.get("message") if j.operation is Operation.CHAT else None
            if j.operation is Operation.CHAT and not isinstance(message, dict):
                message = {}
            verdict = j.judge(message, choice.get("text"), finish)
            if verdict == "done":
                j.run.response_body = done.body
                return Reply(200, done.body, j.reply_headers())
            if verdict == "fail":
                j.run.response_body = done.body
                break
            if verdict == "escalate":
                dep, why = j.escalate_to, {"reason": "escalate"}
                continue
            why = (
                {"reason": "truncated", "max_tokens": j.body["max_tokens"]}
                if (verdict == "retry")
                else {"reason": "reask"}
            )
        return _error_reply(j)

    async def stream(
        self,
        run: Run,
        model: ModelConfig,
        body: dict[str, Any],
        op: Operation,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Reply | StreamHead | bytes]:
        """Yields a Reply (the request failed before any byte), or a StreamHead then bytes."""
        j = Journey(self.fleet, run, model, fresh_body(body), op, headers)
        head_sent = False
        try:
            async for item in self._stream(j, _wants_usage(body)):
                head_sent = head_sent or isinstance(item, StreamHead)
                yield item
        except Exception as exc:  # a bug in turnout: this request fails, nothing else does
            reply = internal_error(run, exc, j)
            if head_sent:
                yield error_event(reply.body["error"]["message"], "server_error", "internal_error")
            else:
                yield reply
        except BaseException as exc:
            _abandon(j, exc)
            raise
        finally:
            self.finish(run)

    async def _stream(
        self, j: Journey, wants_usage: bool
    ) -> AsyncIterator[Reply | StreamHead | bytes]:
        dep = j.route()
        while dep is not None:
            if not await j.begin(dep):
                break
            request = UpstreamRequest(j.operation, j.upstream_body(dep), j.run.id)
            source = self.fleet.backends[dep].stream(request)
            redaction = j.redaction_for(dep)
            if redaction is not None:
                source = _restoring(source, redaction.stream())
            held: list[StreamChunk] = []
            try:
                # Hold chunks until the first token: failures before it can still be retried.
                async for chunk in source:
                    held.append(chunk)
                    if _has_token(chunk.data):
                        break
            except UpstreamError as err:
                await source.aclose()  # type: ignore[attr-defined]
                dep = await j.after_failure(err)
                continue
            try:
                async for piece in self._relay(j, source, held, wants_usage):
                    yield piece
            finally:
                await source.aclose()  # type: ignore[attr-defined]
            return
        reply = _error_reply(j)
        j.run.http_status = reply.status
        yield reply

    async def _relay(
        self, j: Journey, source: Any, held: list[StreamChunk], wants_usage: bool
    ) -> AsyncIterator[StreamHead | bytes]:
        run = j.run
        now = run.now()
        run.ttft_s = now - run.started
        j.attempt.ttft_s = now - j.attempt.started
        run.transition(State.STREAMING, deployment=j.attempt.deployment, attempt=j.attempt.number)
        run.http_status = 200
        yield StreamHead(j.reply_headers())
        acc = Accumulator(j.operation)
        for chunk in held:
            if _carries_text(chunk.data):
                j.streamed_tokens()
            if acc.add(chunk.data) or wants_usage:
                yield chunk.raw or _event(chunk.data)
        try:
            async for chunk in source:
                if _carries_text(chunk.data):
                    j.streamed_tokens()  # one chunk a token, as OpenAI-compatible servers stream
                if acc.add(chunk.data) or wants_usage:
                    yield chunk.raw or _event(chunk.data)
        except UpstreamError as err:
            j.attempt_failed(err, acc.usage)
            run.transition(
                State.FAILED_UPSTREAM,
                reason="stream broke after bytes reached the client",
                deployment=j.attempt.deployment,
                failure=err.failure.value,
                error=err.message,
            )
            run.error = err.message
            run.response_body = acc.message()
            yield error_event(err.message, "upstream_error", err.failure.value)
            return
        j.attempt_succeeded(acc.usage, acc.finish_reason)
        run.response_body = acc.message()
        if acc.finish_reason == "length":
            run.transition(State.VALIDATING, finish_reason="length")
            if j.structured:
                run.transition(State.INVALID_OUTPUT, kind="truncated", reason="structured output")
                run.error = "the answer was cut off at the token limit"
                yield error_event(run.error, "invalid_output", "truncated")
                return
            run.transition(State.TRUNCATED, policy="streamed")
        else:
            message = acc.message() if j.operation is Operation.CHAT else None
            j.reask_allowed = False  # the client already has the bytes
            verdict = j.judge(message, acc.text(), acc.finish_reason)
            if verdict == "fail":
                run.error = j.error.message if j.error else "invalid output"
                yield error_event(run.error, "invalid_output", j.error.code if j.error else None)
                return
        yield DONE


async def _restoring(source: Any, restorer: StreamRestorer) -> AsyncIterator[StreamChunk]:
    """The upstream's chunks with the originals put back; re-serialised, since text changed."""
    try:
        async for chunk in source:
            yield StreamChunk(restorer.apply(chunk.data))
    finally:
        await source.aclose()


def _wants_usage(body: dict[str, Any]) -> bool:
    opts = body.get("stream_options")
    return isinstance(opts, dict) and bool(opts.get("include_usage"))


def _has_token(data: dict[str, Any]) -> bool:
    for c in data.get("choices") or ():
        if c.get("finish_reason") or c.get("text"):
            return True
        delta = c.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls"):
            return True
    return False


def _carries_text(data: dict[str, Any]) -> bool:
    for c in data.get("choices") or ():
        if c.get("text") or (c.get("delta") or {}).get("content"):
            return True
    return False


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _error_reply(j: Journey) -> Reply:
    err = j.error or ApiError(502, "request ended without an answer", type="upstream_error")
    j.run.error = err.message
    return Reply(err.status, err.body(), {**j.reply_headers(), **err.headers})


def _end_open_attempt(run: Run, why: str) -> None:
    if run.attempts and run.attempts[-1].ended is None:
        run.attempts[-1].ended = run.now()
        run.attempts[-1].error = why


def _abandon(j: Journey, exc: BaseException) -> None:
    """The client went away before a terminal state."""
    j.release()
    run = j.run
    if run.outcome is not None:
        return
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        _end_open_attempt(run, "cancelled")
        run.transition(State.CANCELLED, during=run.state.value)
        run.http_status = 499
    else:
        internal_error(run, exc, j)


def internal_error(run: Run, exc: BaseException, journey: Journey | None = None) -> Reply:
    """turnout failed: the run ends `failed` with the exception's class, the client gets a 500.

    The exception's text goes to the log only: it may quote the request.
    """
    log.error("request %s failed inside turnout", run.id, exc_info=exc)
    if journey is not None:
        journey.release()
    error = ApiError(
        500,
        f"turnout failed while serving this request ({type(exc).__name__}); request id {run.id}",
        type="server_error",
        code="internal_error",
    )
    if run.outcome is None:
        _end_open_attempt(run, "internal_error")
        run.error = f"internal error: {type(exc).__name__}"
        run.transition(State.FAILED, during=run.state.value, exception=type(exc).__name__)
    run.http_status = 500
    return Reply(
        500, error.body(), {"x-turnout-outcome": run.state.value, "x-should-retry": "false"}
    )


__all__ = ["DONE", "Engine", "Reply", "StreamHead", "Usage"]
