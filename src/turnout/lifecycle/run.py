"""The Run: everything that happens to one request, in order, with time and attributes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from turnout.lifecycle.states import TRANSITIONS, IllegalTransition, State


@dataclass(slots=True)
class Event:
    state: State
    at: float  # unix seconds
    attrs: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "at": self.at,
            **({"attrs": self.attrs} if self.attrs else {}),
        }


@dataclass(slots=True)
class Attempt:
    number: int
    deployment: str
    started: float
    ended: float | None = None
    ok: bool = False
    error: str | None = None  # a Failure value, or a validation failure
    status: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    ttft_s: float | None = None
    finish_reason: str | None = None
    reask: bool = False
    continuation: bool | None = None  # it continued a broken stream from what the client had
    events_skipped: int | None = None  # unparseable stream events skipped while the stream went on

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]
        return {k: v for k, v in out.items() if v is not None}


@dataclass(slots=True)
class Run:
    """One request. Only `transition` changes `state`, and only as the table allows."""

    id: str
    model: str
    operation: str
    stream: bool = False
    started: float = field(default_factory=time.time)
    state: State = State.RECEIVED
    events: list[Event] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    http_status: int | None = None
    error: str | None = None
    ttft_s: float | None = None
    ended: float | None = None
    request_body: Any = None
    response_body: Any = None
    client: dict[str, Any] = field(default_factory=dict)
    # Model migration: {"shadow_of": id} on a shadow, {"shadow": id} on its primary,
    # {"canary": {...}} on a request the canary split placed.
    migration: dict[str, Any] = field(default_factory=dict)
    wire: str = "chat.completions"  # the wire format the client spoke
    key_id: str | None = None  # the client key that authorised it (never the secret)
    tenant: str | None = None
    # Request-level facts beyond the columns (the upstream wire format, intent signals, …)
    attrs: dict[str, Any] = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.events.append(Event(State.RECEIVED, self.started, {}))

    def transition(self, to: State, /, **attrs: Any) -> None:
        if to not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"{self.state.value} → {to.value} (run {self.id})")
        self.state = to
        self.events.append(Event(to, self.now(), attrs))
        if to.terminal:
            self.ended = self.events[-1].at

    def now(self) -> float:
        """Wall-clock time derived from a monotonic clock, so event order never runs backwards."""
        return self.started + (time.perf_counter() - self._t0)

    @property
    def outcome(self) -> State | None:
        return self.state if self.state.terminal else None

    @property
    def latency_s(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    @property
    def prompt_tokens(self) -> int:
        return sum(a.prompt_tokens for a in self.attempts)

    @property
    def completion_tokens(self) -> int:
        return sum(a.completion_tokens for a in self.attempts)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)

    @property
    def deployments(self) -> list[str]:
        seen: list[str] = []
        for a in self.attempts:
            if a.deployment not in seen:
                seen.append(a.deployment)
        return seen

    @property
    def path(self) -> list[str]:
        return [e.state.value for e in self.events]
