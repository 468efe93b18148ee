"""Each proxied tool call is one `Run` in the request record, like an LLM request.

received → routed → attempting → validating → completed; `blocked` when the guard or the policy
refuses (before the call, or during it: an outbound request the guard refused), `rejected` for
arguments that break the tool's schema, `failed_upstream` when the server answers with an error
(a JSON-RPC error or a result flagged `isError`), `cancelled` when the client withdraws the call.

A tool the guard holds back is recorded too, called or not: one `tool_hold` run, `blocked`, per
held definition, so a client that never shows the proxy's stderr still leaves a trace.
"""

from __future__ import annotations

import os
import time
from typing import Any

from mcp_types import JSONRPCError, JSONRPCResponse

from turnout.lifecycle.run import Attempt, Run
from turnout.lifecycle.states import State
from turnout.mcp.canonical import canonical_json, tool_hash
from turnout.mcp.guard import Guard, Refusal
from turnout.store.writer import RecordWriter


def new_run_id() -> str:
    """Sortable by time, like the gateway's request ids: milliseconds, then randomness."""
    return f"{int(time.time() * 1000):012x}{os.urandom(6).hex()}"


class ToolCallRecord:
    """The Run of one tool call, with the few moves the proxy makes on it."""

    def __init__(
        self,
        server: str,
        tool: str | None,
        params: dict[str, Any],
        client: dict[str, Any],
        operation: str = "tool_call",
    ):
        self.server = server
        self.run = Run(
            id=new_run_id(),
            model=f"mcp:{server}/{tool}" if tool else f"mcp:{server}",
            operation=operation,
            request_body=params,
            client=client,
            wire="mcp",  # JSON-RPC to a tool server, not a model API
        )
        self.attempt: Attempt | None = None

    def refuse(self, state: State, reason: str, message: str) -> None:
        self.run.error = f"{reason}: {message}"
        self.run.transition(state, reason=reason)

    def forward(self) -> None:
        self.run.transition(State.ROUTED, server=self.server)
        self.attempt = Attempt(number=1, deployment=self.server, started=self.run.now())
        self.run.attempts.append(self.attempt)
        self.run.transition(State.ATTEMPTING, attempt=1)

    def failed(self, error: str, **attrs: Any) -> None:
        self._end_attempt(error)
        self.run.error = error
        self.run.transition(State.FAILED_UPSTREAM, **attrs)

    def settle(self, reply: JSONRPCResponse | JSONRPCError, egress_refused: list[str]) -> None:
        """The server's answer: a refusal if the guard refused what the call tried to send
        (whatever the server made of that), else an error or an answer."""
        if egress_refused:
            answer = (
                reply.result
                if isinstance(reply, JSONRPCResponse)
                else {"error": reply.error.model_dump(exclude_none=True)}
            )
            self.egress_refused(egress_refused, answer)
        elif isinstance(reply, JSONRPCError):
            err = reply.error
            self.failed(f"jsonrpc_error {err.code}: {err.message}", code=err.code)
        else:
            self.answered(reply.result)

    def answered(self, result: dict[str, Any]) -> None:
        """An answer: an error result fails the call, any other completes it."""
        self.run.response_body = result
        if result.get("isError"):
            self.failed("tool_error", is_error=True)
            return
        self._end_attempt(None)
        self.run.transition(State.VALIDATING)
        self.run.transition(State.COMPLETED)

    def egress_refused(self, refused: list[str], answer: dict[str, Any]) -> None:
        """The guard refused what the tool tried to send: a refusal, whatever the server made of
        it (an error, an `isError` result, or an answer that hides the failure)."""
        self.run.response_body = answer
        self._end_attempt("egress_refused")
        self.run.error = f"egress_refused: {refused[0]}"
        self.run.transition(State.BLOCKED, reason="egress_refused", refused=len(refused))

    def cancelled(self, reason: str | None) -> None:
        if not self.run.state.terminal:
            self._end_attempt("cancelled")
            self.run.transition(State.CANCELLED, **({"reason": reason} if reason else {}))

    def _end_attempt(self, error: str | None) -> None:
        if self.attempt is not None and self.attempt.ended is None:
            self.attempt.ended = self.run.now()
            self.attempt.ok = error is None
            self.attempt.error = error


def held_record(
    server: str, tool: str | None, body: dict[str, Any], reason: str, message: str
) -> ToolCallRecord:
    """A tool (or a whole server, `tool` None) the guard holds back, as one `blocked` run."""
    record = ToolCallRecord(server, tool, body, {"guard": "held"}, operation="tool_hold")
    record.refuse(State.BLOCKED, reason, message)
    return record


def record_holds(
    recorder: Recorder,
    guard: Guard,
    current: dict[str, dict[str, Any]],
    late_refusal: Refusal | None,
) -> None:
    """A row for each tool of `current` the guard holds back, the first time it does."""
    for name, definition in current.items():
        refusal = late_refusal
        if refusal is None and guard.tool_status(definition) != "approved":
            refusal = guard.call_refusal(name, current)
        if refusal is None or not guard.first_hold(name, tool_hash(definition), refusal.reason):
            continue
        why = "; ".join(guard.why_held(definition, current))
        body = {"name": name, "definition": definition}
        message = f"{refusal.message} ({why})" if why else refusal.message
        recorder.submit(held_record(guard.name, name, body, refusal.reason, message))


def record_server_hold(
    recorder: Recorder, guard: Guard, package: dict[str, Any], refusal: Refusal
) -> None:
    """A server blocked before it is launched: one row per package and reason."""
    if guard.first_hold(None, canonical_json(package), refusal.reason):
        body = {"package": package}
        recorder.submit(held_record(guard.name, None, body, refusal.reason, refusal.message))


class Recorder:
    """Where finished runs go: the shared SQLite record, through its batch writer."""

    def __init__(self, url: str, record_bodies: str, flush_interval_s: float = 0.2):
        self.writer = RecordWriter(url, record_bodies, flush_interval_s, queue_size=10_000)
        self._open = False

    def open(self) -> None:
        if not self._open:
            self.writer.open()
            self._open = True

    def submit(self, record: ToolCallRecord) -> None:
        self.writer.submit(record.run)

    def close(self) -> None:
        if self._open:
            self.writer.close()
            self._open = False
