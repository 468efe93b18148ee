"""Faults addressed by position in a run — "at model call 6", "the 2nd call to tool lookup",
"every 3rd call" — never by chance, so the same test has the same outcome every run.

Model-call faults are injected at the backend seam (see `fault_backend.py`) and then meet
turnout's real lifecycle; tool faults are injected into the agent's own tool functions
(`FaultPlan.wrap_tools`).

Positions count per conversation when requests carry one (the `x-turnout-conversation-id`
header or `metadata.conversation_id`), so agents running at once each get their faults at their
own call 6; requests without one share one count. A fault that never fires fails the test
unless it says `optional=True`: a fault that did not happen tested nothing.
"""

from __future__ import annotations

import enum
import functools
import inspect
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from turnout.errors import TurnoutError


class FaultKind(enum.StrEnum):
    # model calls: failures the upstream reports
    RATE_LIMITED = "rate_limited"  # 429
    SERVER_ERROR = "server_error"  # 5xx (status, default 500)
    TIMEOUT = "timeout"
    BROKEN_STREAM = "broken_stream"  # breaks after `after_chunks` tokens (or the body is cut)
    # model calls: answers that arrive as a success
    TRUNCATED = "truncated"  # finish_reason "length", the answer cut in half
    EMPTY_CONTENT = "empty_content"
    MALFORMED_TOOL_CALL = "malformed_tool_call"  # tool-call arguments that are not JSON
    INVALID_TOOL_ARGUMENTS = "invalid_tool_arguments"  # JSON that violates the tool's schema
    # the agent's tools
    TOOL_ERROR = "tool_error"  # an MCP-style `isError: true` result
    TOOL_EXCEPTION = "tool_exception"  # the tool function raises ToolFault

    @property
    def on_tool(self) -> bool:
        return self in (FaultKind.TOOL_ERROR, FaultKind.TOOL_EXCEPTION)


@dataclass(frozen=True, slots=True)
class At:
    """Which calls a fault hits, counted from 1: the `call`-th, and/or every `every`-th.

    For tool faults, `tool` restricts the count to calls of that tool; without it, every tool
    call counts. Model calls are counted per request the gateway receives (the agent's calls),
    not per upstream attempt, so a retry of call 6 is still call 6.
    """

    call: int | None = None
    every: int | None = None
    tool: str | None = None

    def __post_init__(self) -> None:
        if self.call is None and self.every is None:
            raise ValueError("a fault position needs `call` or `every`")
        for name in ("call", "every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`{name}` counts from 1, got {value}")

    def hits(self, n: int) -> bool:
        return n == self.call or (self.every is not None and n % self.every == 0)

    def __str__(self) -> str:
        parts = [f"tool={self.tool}"] if self.tool else []
        if self.call is not None:
            parts.append(f"call={self.call}")
        if self.every is not None:
            parts.append(f"every={self.every}")
        return ",".join(parts)


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    at: At
    attempts: int | None = 1  # model faults: how many attempts of a hit call fail (None: all)
    status: int = 500  # server_error's status
    retry_after_s: float | None = None  # rate_limited's Retry-After
    after_chunks: int = 2  # broken_stream: tokens delivered before the break
    message: str = ""
    optional: bool = False  # may pass without ever firing

    def __str__(self) -> str:
        extra = ""
        if self.attempts != 1:
            extra += f",attempts={'all' if self.attempts is None else self.attempts}"
        if self.kind is FaultKind.SERVER_ERROR and self.status != 500:
            extra += f",status={self.status}"
        if self.optional:
            extra += ",optional"
        return f"{self.kind.value}@{self.at}{extra}"

    def describe(self) -> str:
        return self.message or f"injected by turnout.testing: {self.kind.value} ({self.at})"


def _at(at: int | At | None, every: int | None, tool: str | None = None) -> At:
    if isinstance(at, At):
        return at if tool is None else replace(at, tool=tool)
    return At(call=at, every=every, tool=tool)


def _model(kind: FaultKind) -> Callable[..., Fault]:
    def make(at: int | At | None = None, *, every: int | None = None, **options: Any) -> Fault:
        return Fault(kind, _at(at, every), **options)

    make.__name__ = kind.value
    make.__doc__ = f"A `{kind.value}` fault at model call `at` (1-based) or every `every`-th."
    return make


rate_limited = _model(FaultKind.RATE_LIMITED)
server_error = _model(FaultKind.SERVER_ERROR)
timeout = _model(FaultKind.TIMEOUT)
broken_stream = _model(FaultKind.BROKEN_STREAM)
truncated = _model(FaultKind.TRUNCATED)
empty_content = _model(FaultKind.EMPTY_CONTENT)
malformed_tool_call = _model(FaultKind.MALFORMED_TOOL_CALL)
invalid_tool_arguments = _model(FaultKind.INVALID_TOOL_ARGUMENTS)


def tool_error(
    tool: str | None = None, at: int | At | None = None, *, every: int | None = None, **kw: Any
) -> Fault:
    """The `at`-th call (of `tool`, or of any tool) returns an `isError: true` result."""
    return Fault(FaultKind.TOOL_ERROR, _at(at, every, tool), **kw)


def tool_exception(
    tool: str | None = None, at: int | At | None = None, *, every: int | None = None, **kw: Any
) -> Fault:
    """The `at`-th call (of `tool`, or of any tool) raises `ToolFault`."""
    return Fault(FaultKind.TOOL_EXCEPTION, _at(at, every, tool), **kw)


def parse_fault(text: str) -> Fault:
    """`kind@call=6`, `kind@every=3,status=503`, `tool_error@tool=lookup,call=2`,
    `timeout@call=2,attempts=all`, `rate_limited@call=9,optional` — the form `str(fault)`
    prints."""
    kind_text, _, spec = text.strip().partition("@")
    try:
        kind = FaultKind(kind_text.strip())
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise ValueError(f"unknown fault kind {kind_text!r} (known: {known})") from None
    pos: dict[str, Any] = {}
    opts: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, eq, value = part.partition("=")
        if name == "optional":
            if value.lower() not in ("", "true", "false"):
                raise ValueError(f"fault {text!r}: optional is true or false, got {value!r}")
            opts[name] = value.lower() != "false"
            continue
        if not eq:
            raise ValueError(f"fault {text!r}: expected name=value, got {part!r}")
        if name in ("call", "every"):
            pos[name] = int(value)
        elif name == "tool":
            pos[name] = value
        elif name == "attempts":
            opts[name] = None if value == "all" else int(value)
        elif name in ("status", "after_chunks"):
            opts[name] = int(value)
        elif name == "retry_after_s":
            opts[name] = float(value)
        elif name == "message":
            opts[name] = value
        else:
            raise ValueError(f"fault {text!r}: unknown option {name!r}")
    return Fault(kind, At(**pos), **opts)


class ToolFault(TurnoutError, RuntimeError):
    """Raised by a tool function that a `tool_exception` fault hit."""


def tool_error_result(tool: str, message: str) -> dict[str, Any]:
    """A failed tool call the way MCP reports it: a result with `isError: true`."""
    return {"isError": True, "content": [{"type": "text", "text": f"{tool}: {message}"}]}


@dataclass(frozen=True, slots=True)
class Injection:
    """A fault that fired: which, where, and on which attempt."""

    fault: str
    call: int
    attempt: int = 1
    tool: str | None = None
    conversation: str | None = None


class FaultPlan:
    """The faults of one run, and the counters that place them. `reset()` starts a new run."""

    def __init__(self, faults: Iterable[Fault | str] = ()) -> None:
        self.faults = tuple(parse_fault(f) if isinstance(f, str) else f for f in faults)
        self.injected: list[Injection] = []
        self.problems: list[str] = []
        self._calls: dict[str, int] = {}  # request id → its model call number in its conversation
        self._conversation_calls: Counter[str] = Counter()  # conversation ("": none) → calls
        self._attempts: Counter[str] = Counter()
        self._tool_calls: Counter[tuple[str, str]] = Counter()  # (conversation, tool or "")
        self._wrapped: set[str] = set()
        self._fired: set[int] = set()  # indices into `faults`
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._conversation_calls.clear()
            self._attempts.clear()
            self._tool_calls.clear()
            self._fired.clear()
            self.injected.clear()

    @property
    def model_calls(self) -> int:
        return len(self._calls)

    def model_call(self, request_id: str, conversation: str | None = None) -> Fault | None:
        """Count an upstream attempt of request `request_id`; the fault that hits it, if any."""
        with self._lock:
            n = self._calls.get(request_id)
            if n is None:
                self._conversation_calls[conversation or ""] += 1
                n = self._calls[request_id] = self._conversation_calls[conversation or ""]
            self._attempts[request_id] += 1
            attempt = self._attempts[request_id]
            for i, f in enumerate(self.faults):
                if f.kind.on_tool or not f.at.hits(n):
                    continue
                if f.attempts is None or attempt <= f.attempts:
                    self._fired.add(i)
                    self.injected.append(Injection(str(f), n, attempt, conversation=conversation))
                    return f
        return None

    def tool_call(self, tool: str, conversation: str | None = None) -> Fault | None:
        conv = conversation or ""
        with self._lock:
            self._tool_calls[(conv, "")] += 1
            self._tool_calls[(conv, tool)] += 1
            for i, f in enumerate(self.faults):
                if not f.kind.on_tool or (f.at.tool is not None and f.at.tool != tool):
                    continue
                n = self._tool_calls[(conv, f.at.tool or "")]
                if f.at.hits(n):
                    self._fired.add(i)
                    self.injected.append(Injection(str(f), n, tool=tool, conversation=conversation))
                    return f
        return None

    def unfired(self) -> list[str]:
        """Why each fault that is not optional never fired in this run, one line each."""
        out = []
        with self._lock:
            for i, f in enumerate(self.faults):
                if i in self._fired or f.optional:
                    continue
                out.append(
                    f"fault {f} never fired: {self._why_not(f)}; a fault that does not happen "
                    "tests nothing (mark it optional=True if it need not fire)"
                )
        return out

    def _why_not(self, f: Fault) -> str:
        if not f.kind.on_tool:
            most = max(self._conversation_calls.values(), default=0)
            where = " in any one conversation" if len(self._conversation_calls) > 1 else ""
            return f"the run made {most} model calls{where}"
        calls = Counter[str]()
        for (_, tool), n in self._tool_calls.items():
            if tool:
                calls[tool] += n
        if f.at.tool is not None and self._wrapped and f.at.tool not in self._wrapped:
            return (
                f"no tool is named {f.at.tool!r} (the wrapped tools: "
                f"{', '.join(sorted(self._wrapped))})"
            )
        if not self._wrapped:
            return "no tools were wrapped with wrap_tools()"
        seen = ", ".join(f"{t}×{n}" for t, n in sorted(calls.items())) or "none"
        return f"the run's tool calls: {seen}"

    def assert_fired(self) -> None:
        """Fail (AssertionError) if a fault that is not optional never fired."""
        missing = self.unfired()
        if missing:
            raise AssertionError("\n".join(missing))

    def problem(self, message: str) -> None:
        with self._lock:
            self.problems.append(message)

    def wrap_tools(
        self, tools: Mapping[str, Callable[..., Any]], conversation: str | None = None
    ) -> dict[str, Callable[..., Any]]:
        """The agent's tool functions, with this plan's tool faults injected by position.
        With several agents at once, give each its `conversation`: calls count per agent."""
        with self._lock:
            self._wrapped.update(tools)
        return {name: self._wrap(name, fn, conversation) for name, fn in tools.items()}

    def _wrap(
        self, name: str, fn: Callable[..., Any], conversation: str | None
    ) -> Callable[..., Any]:
        def hit() -> Fault | None:
            fault = self.tool_call(name, conversation)
            if fault is not None and fault.kind is FaultKind.TOOL_EXCEPTION:
                raise ToolFault(f"{name}: {fault.describe()}")
            return fault

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def acall(*args: Any, **kwargs: Any) -> Any:
                fault = hit()
                if fault is not None:
                    return tool_error_result(name, fault.describe())
                return await fn(*args, **kwargs)

            return acall

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            fault = hit()
            if fault is not None:
                return tool_error_result(name, fault.describe())
            return fn(*args, **kwargs)

        return call
