"""The one seam every deployment answers through, and the closed set of ways it can fail."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from turnout.errors import TurnoutError


class Failure(enum.StrEnum):
    """Every upstream failure is classified once, at the backend edge, into one of these."""

    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    MALFORMED_RESPONSE = "malformed_response"
    BROKEN_STREAM = "broken_stream"
    CLIENT_ERROR = "client_error"
    CONTEXT_EXCEEDED = "context_exceeded"  # the prompt does not fit this deployment's window

    @property
    def retryable(self) -> bool:
        """Another attempt may succeed (context_exceeded only on a larger window)."""
        return self is not Failure.CLIENT_ERROR

    @property
    def transient(self) -> bool:
        """Worth one more try on the same deployment when its wait fits (a one-off)."""
        return self in (Failure.SERVER_ERROR, Failure.RATE_LIMITED, Failure.OVERLOADED)

    @property
    def unhealthy(self) -> bool:
        """Says the deployment is unwell, not that one request was wrong or one client too busy.

        Rate limits are excluded: Retry-After paces them, and they are a client's quota, not an
        outage.
        """
        return self not in (Failure.CLIENT_ERROR, Failure.RATE_LIMITED, Failure.CONTEXT_EXCEEDED)


class UpstreamError(TurnoutError):
    """A classified upstream failure; `status` is the upstream's HTTP status when there was one.

    `code` and `param` are the upstream's own (what the client sees when nothing could serve it);
    `should_retry` is the upstream's `x-should-retry` when it sent one.
    """

    def __init__(
        self,
        failure: Failure,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        code: str | None = None,
        param: str | None = None,
        should_retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s
        self.code = code
        self.param = param
        self.should_retry = should_retry

    def __repr__(self) -> str:
        return f"UpstreamError({self.failure.value}, {self.message!r}, status={self.status})"


class Operation(enum.StrEnum):
    CHAT = "chat"
    COMPLETION = "text_completion"


@dataclass(slots=True)
class UpstreamRequest:
    """An OpenAI-shaped request body bound for one deployment.

    `body` is the client's body (model name already replaced by the deployment's), so parameters
    turnout does not interpret (tools, seed, logit_bias …) pass through untouched.
    """

    operation: Operation
    body: dict[str, Any]
    request_id: str
    # Headers every upstream call carries beyond the backend's own (trace context: traceparent).
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StreamChunk:
    """One event of a streamed answer: the parsed chunk, and the exact bytes to forward."""

    data: dict[str, Any]
    raw: bytes = b""
    skipped: bool = False  # an event that could not be parsed, left out while the stream went on


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_body(cls, usage: Any) -> Usage:
        """Counts from an upstream's `usage`; anything but a non-negative integer counts 0."""
        if not isinstance(usage, dict):
            return cls()
        return cls(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))


def _count(value: Any) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53
    return int(value) if ok else 0


@dataclass(slots=True)
class Completion:
    """A whole (non-streamed) answer as the upstream gave it."""

    body: dict[str, Any]
    usage: Usage = field(default_factory=Usage)


class Backend(Protocol):
    """Everything that can answer an OpenAI-shaped request: an HTTP API, an in-process model, …"""

    name: str

    async def complete(self, request: UpstreamRequest) -> Completion:
        """Answer in one piece; raises UpstreamError."""
        ...

    def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamChunk]:
        """Answer chunk by chunk; raises UpstreamError before or between chunks."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def ready(self) -> bool: ...
