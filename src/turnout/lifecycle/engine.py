"""Performs a Journey's steps against the backends, in one piece or as a stream.

The engine does I/O only: what happens next is `decide.py`'s answer to what just happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from turnout.backends.base import (
    Operation,
    StreamChunk,
    UpstreamError,
    UpstreamRequest,
    Usage,
)
from turnout.config import ModelConfig
from turnout.errors import ApiError
from turnout.lifecycle.decide import Answered, Attempt, Backoff, Failed, Finish, Step
from turnout.lifecycle.fleet import Fleet
from turnout.lifecycle.journey import Journey, estimate_broken_usage
from turnout.lifecycle.redaction import StreamRestorer
from turnout.lifecycle.relay import DONE, Relay, has_token
from turnout.lifecycle.request import Request
from turnout.lifecycle.run import Run
from turnout.lifecycle.states import State
from turnout.lifecycle.stream import error_event

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
        if self.fleet.tracer is not None:
            self.fleet.tracer.finished(run)

    def reject(self, run: Run, error: ApiError) -> Reply:
        """Bad input: recorded like every request, and nothing else happens."""
        run.error = error.message
        run.http_status = error.status
        reason = {"code": error.code} if error.code else {}
        run.transition(State.REJECTED, status=error.status, error=error.message, **reason)
        self.finish(run)
        headers = {"x-turnout-outcome": "rejected", "x-should-retry": "false", **error.headers}
        return Reply(error.status, error.body(), headers)

    async def complete(
        self,
        run: Run,
        model: ModelConfig,
        request: Request,
    ) -> Reply:
        j = Journey(self.fleet, run, model, request)
        try:
            reply = await self._complete(j)
            run.http_status = reply.status
        except Exception as exc:  # a bug in turnout: this request fails, nothing else does
            reply = internal_error(run, exc)
        except BaseException as exc:
            _abandon(j, exc)
            raise
        finally:
            self.finish(run)
        return reply

    async def _between(self, j: Journey, step: Step) -> Attempt | Finish:
        """Perform steps until the next attempt (or the end): backoff waits, re-asks, …"""
        while not isinstance(step, Attempt | Finish):
            nxt = j.perform(step)
            if isinstance(step, Backoff) and step.delay_s > 0:
                await asyncio.sleep(step.delay_s)
            step = nxt
        if isinstance(step, Finish) and step is not None and j.run.outcome is None:
            j.finish(step)
        return step

    async def _complete(self, j: Journey) -> Reply:
        step = await self._between(j, j.route())
        while isinstance(step, Attempt):
            outcome: Failed | Answered | Finish
            async with j.new_lease(step.deployment) as lease:
                outcome = await j.enter(step, lease) or await self._call(j, step.deployment)
            if isinstance(outcome, Finish):
                j.finish(outcome)
                break
            if isinstance(outcome, Failed):
                step = await self._between(j, j.after_failure(outcome))
                continue
            j.run.transition(State.VALIDATING, finish_reason=outcome.finish)
            step = await self._between(j, j.after_answer(outcome))
        if j.run.state in (State.COMPLETED, State.TRUNCATED):
            return Reply(200, j.run.response_body, j.reply_headers())
        return _error_reply(j)

    async def _call(self, j: Journey, deployment: str) -> Failed | Answered:
        """One attempt in one piece."""
        backend = self.fleet.backends[deployment]
        body = j.upstream_body(deployment)
        request = UpstreamRequest(j.operation, body, j.run.id, j.call_headers(body))
        try:
            done = await backend.complete(request)
        except UpstreamError as err:
            j.failed_with(err)
            return Failed(deployment, err)
        redaction = j.redaction_for(deployment)
        if redaction is not None:
            redaction.restore_response(done.body)
        first = done.body["choices"][0]
        choice = first if isinstance(first, dict) else {}
        finish = choice.get("finish_reason")
        message = choice.get("message") if j.operation is Operation.CHAT else None
        if j.call is not None:
            j.call.response(done.body)
            j.call.output(message if j.operation is Operation.CHAT else choice.get("text"), finish)
        j.succeeded(done.usage, finish)
        if j.operation is Operation.CHAT and not isinstance(message, dict):
            message = {}
        j.run.response_body = done.body
        return Answered(
            deployment, message, choice.get("text"), finish,
            done.usage.prompt_tokens, done.usage.completion_tokens,
        )  # fmt: skip

    async def stream(
        self,
        run: Run,
        model: ModelConfig,
        request: Request,
    ) -> AsyncIterator[Reply | StreamHead | bytes]:
        """Yields a Reply (the request failed before any byte), or a StreamHead then bytes."""
        j = Journey(self.fleet, run, model, request)
        relay = Relay(request.operation, request.wants_usage)
        try:
            async for item in self._stream(j, relay):
                yield item
        except Exception as exc:  # a bug in turnout: this request fails, nothing else does
            reply = internal_error(run, exc)
            if relay.head_sent:
                yield error_event(reply.body["error"]["message"], "server_error", "internal_error")
            else:
                yield reply
        except BaseException as exc:
            _abandon(j, exc)
            raise
        finally:
            self.finish(run)

    async def _stream(self, j: Journey, relay: Relay) -> AsyncIterator[Reply | StreamHead | bytes]:
        run = j.run
        step = await self._between(j, j.route())
        while isinstance(step, Attempt):
            outcome: Failed | Finish | None = None
            async with j.new_lease(step.deployment) as lease:
                outcome = await j.enter(step, lease)
                if outcome is not None:
                    j.finish(outcome)
                    break
                relay.next_attempt(step.continuation)
                prefix = relay.acc.text() if step.continuation else None
                body = j.upstream_body(step.deployment, prefix, relay.sent_tokens)
                source = self.fleet.backends[step.deployment].stream(
                    UpstreamRequest(j.operation, body, run.id, j.call_headers(body))
                )
                redaction = j.redaction_for(step.deployment)
                if redaction is not None:
                    source = _restoring(source, redaction.stream())
                try:
                    async for piece in self._relay(j, relay, source):
                        yield piece
                except UpstreamError as err:
                    outcome = Failed(
                        step.deployment, err, relay.sent_chars, relay.sent_tokens,
                        relay.acc.has_tool_calls,
                    )  # fmt: skip
                    usage = relay.attempt_usage
                    if not usage.completion_tokens and relay.head_sent:
                        usage = estimate_broken_usage(body, relay.attempt_tokens)
                    j.failed_with(err, usage)
                finally:
                    await source.aclose()  # type: ignore[attr-defined]
                if outcome is None:
                    if j.call is not None and j.call.capturing:
                        j.call.output(relay.acc.message(), relay.attempt_finish)
                    j.succeeded(relay.attempt_usage, relay.attempt_finish)
            if isinstance(outcome, Failed):
                step = await self._between(j, j.after_failure(outcome))
                continue
            run.response_body = relay.acc.message()
            finish = relay.acc.finish_reason
            run.transition(State.VALIDATING, finish_reason=finish)
            message = relay.acc.message() if j.operation is Operation.CHAT else None
            answered = Answered(
                step.deployment, message, relay.acc.text(), finish, streamed=True,
                completion_tokens=relay.attempt_usage.completion_tokens,
            )  # fmt: skip
            step = await self._between(j, j.after_answer(answered))
        if relay.head_sent:
            if run.response_body is None:
                run.response_body = relay.acc.message()
            if run.state in (State.COMPLETED, State.TRUNCATED):
                usage = relay.usage_event(Usage(run.prompt_tokens, run.completion_tokens))
                yield DONE if usage is None else usage + DONE  # one write
            else:
                err = j.error or ApiError(502, "the stream ended without an answer")
                run.error = err.message
                yield error_event(err.message, err.type, err.code)
            return
        reply = _error_reply(j)
        run.http_status = reply.status
        yield reply

    async def _relay(
        self, j: Journey, relay: Relay, source: Any
    ) -> AsyncIterator[StreamHead | bytes]:
        """One attempt's chunks to the client; held until its first token, when it can still
        fail invisibly (or, in a continuation, without the client seeing a seam)."""
        run = j.run
        held: list[StreamChunk] = []
        async for chunk in source:
            if chunk.skipped:
                _skipped(j)
                continue
            if not held and j.call is not None:
                j.call.response(chunk.data)
            held.append(chunk)
            if has_token(chunk.data):
                break
        now = run.now()
        if run.ttft_s is None:
            run.ttft_s = now - run.started
        j.attempt.ttft_s = now - j.attempt.started
        run.transition(State.STREAMING, deployment=j.attempt.deployment, attempt=j.attempt.number)
        if not relay.head_sent:
            run.http_status = 200
            relay.head_sent = True
            yield StreamHead(j.reply_headers())
        outs = [out for chunk in held if (out := _forward(j, relay, chunk)) is not None]
        if outs:
            yield b"".join(outs)  # what waited for the first token goes out in one write
        async for chunk in source:
            if chunk.skipped:
                _skipped(j)
                continue
            out = _forward(j, relay, chunk)
            if out is not None:
                yield out


def _forward(j: Journey, relay: Relay, chunk: StreamChunk) -> bytes | None:
    before = relay.sent_tokens
    out = relay.forward(chunk)
    if relay.sent_tokens > before and j.lease is not None:
        j.lease.tokens(relay.sent_tokens - before)
    return out


def _skipped(j: Journey) -> None:
    a = j.attempt
    a.events_skipped = (a.events_skipped or 0) + 1


async def _restoring(source: Any, restorer: StreamRestorer) -> AsyncIterator[StreamChunk]:
    """The upstream's chunks with the originals put back; re-serialised, since text changed."""
    try:
        async for chunk in source:
            if chunk.skipped:
                yield chunk
                continue
            yield StreamChunk(restorer.apply(chunk.data))
    finally:
        await source.aclose()


def _error_reply(j: Journey) -> Reply:
    err = j.error or ApiError(502, "request ended without an answer", type="upstream_error")
    j.run.error = err.message
    headers = {**j.reply_headers(), **err.headers}
    headers.setdefault("x-should-retry", "false")
    return Reply(err.status, err.body(), headers)


def _end_open_attempt(run: Run, why: str) -> None:
    if run.attempts and run.attempts[-1].ended is None:
        run.attempts[-1].ended = run.now()
        run.attempts[-1].error = why


def _abandon(j: Journey, exc: BaseException) -> None:
    """The client went away before a terminal state (its lease was given back on the way out)."""
    run = j.run
    if run.outcome is not None:
        return
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        _end_open_attempt(run, "cancelled")
        run.transition(State.CANCELLED, during=run.state.value)
        run.http_status = 499
    else:
        internal_error(run, exc)


def internal_error(run: Run, exc: BaseException) -> Reply:
    """turnout failed: the run ends `failed` with the exception's class, the client gets a 500.

    The exception's text goes to the log only: it may quote the request.
    """
    log.error("request %s failed inside turnout", run.id, exc_info=exc)
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
