"""Lifecycle states and the one transition table that says which may follow which."""

from __future__ import annotations

import enum

from turnout.errors import TurnoutError


class State(enum.StrEnum):
    RECEIVED = "received"
    ROUTED = "routed"
    ATTEMPTING = "attempting"
    STREAMING = "streaming"
    CONTINUING = "continuing"  # a stream broke after bytes went out: the answer goes on elsewhere
    VALIDATING = "validating"
    BACKOFF = "backoff"
    FALLBACK = "fallback"
    REASKING = "reasking"
    # terminal: exactly one per request
    COMPLETED = "completed"
    TRUNCATED = "truncated"
    REJECTED = "rejected"
    INVALID_OUTPUT = "invalid_output"
    FAILED_UPSTREAM = "failed_upstream"
    BUDGET_EXCEEDED = "budget_exceeded"
    BLOCKED = "blocked"
    SHED = "shed"
    CANCELLED = "cancelled"
    FAILED = "failed"  # turnout itself failed (a bug): the exception class is in the record

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {
        State.COMPLETED,
        State.TRUNCATED,
        State.REJECTED,
        State.INVALID_OUTPUT,
        State.FAILED_UPSTREAM,
        State.BUDGET_EXCEEDED,
        State.BLOCKED,
        State.SHED,
        State.CANCELLED,
        State.FAILED,
    }
)

S = State
# Every request may be cancelled (client gone), or fail inside turnout, from any live state.
_ANY_LIVE = {S.CANCELLED, S.FAILED}

TRANSITIONS: dict[State, frozenset[State]] = {
    S.RECEIVED: frozenset({S.ROUTED, S.REJECTED, S.BLOCKED, S.SHED, S.FAILED_UPSTREAM}),
    S.ROUTED: frozenset({S.ATTEMPTING, S.FAILED_UPSTREAM, S.BUDGET_EXCEEDED, S.SHED}),
    S.ATTEMPTING: frozenset(
        {
            S.STREAMING,  # first bytes go to the client; no invisible retry after this
            S.VALIDATING,
            S.BACKOFF,
            S.FALLBACK,
            S.FAILED_UPSTREAM,
            S.BUDGET_EXCEEDED,
            S.BLOCKED,  # a guard refused what the attempt tried to do (an MCP tool's egress)
            S.CONTINUING,  # a continuation failed before its first token: try the next one
        }
    ),
    S.STREAMING: frozenset({S.VALIDATING, S.CONTINUING, S.FAILED_UPSTREAM}),
    S.CONTINUING: frozenset({S.ATTEMPTING, S.FAILED_UPSTREAM, S.BUDGET_EXCEEDED}),
    S.VALIDATING: frozenset(
        {
            S.COMPLETED,
            S.TRUNCATED,
            S.REASKING,
            S.INVALID_OUTPUT,
            S.ATTEMPTING,  # truncated under `retry`: again at once, with more room
            S.FALLBACK,  # cascade: a cheap answer failed its checks; escalate
            S.BUDGET_EXCEEDED,
        }
    ),
    S.BACKOFF: frozenset({S.ATTEMPTING, S.FAILED_UPSTREAM, S.BUDGET_EXCEEDED}),
    S.FALLBACK: frozenset({S.ATTEMPTING, S.FAILED_UPSTREAM, S.BUDGET_EXCEEDED}),
    S.REASKING: frozenset({S.ATTEMPTING, S.INVALID_OUTPUT, S.BUDGET_EXCEEDED}),
}
TRANSITIONS = {state: (nexts | _ANY_LIVE) for state, nexts in TRANSITIONS.items()} | {
    state: frozenset() for state in TERMINAL
}


class IllegalTransition(TurnoutError, RuntimeError):
    """A transition the table does not allow: always a bug in turnout, never the client's fault."""
