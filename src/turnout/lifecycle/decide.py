"""Which step comes next: one pure function of the request, the fleet and what just happened.

The engine performs the step it is given (one transition of the table each) and does the I/O;
it never decides. Everything here is data in, data out, so each rule can be tested and read alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.backends.base import Failure, UpstreamError
from turnout.config import LifecyclePolicy, ModelConfig
from turnout.errors import ApiError
from turnout.lifecycle.request import Request
from turnout.lifecycle.states import State
from turnout.lifecycle.validate import Invalid, cascade_check, validate_message, validate_text

_FAILURE_STATUS = {
    Failure.RATE_LIMITED: 429,
    Failure.OVERLOADED: 503,
    Failure.TIMEOUT: 504,
}

# -- what the decision reads ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FleetView:
    """The deployments' state as the decision sees it at this moment."""

    available: frozenset[str]  # breakers that take an attempt now
    rest_s: Mapping[str, float]  # how long each resting deployment still rests
    windows: Mapping[str, int | None]  # context windows (None: unknown)
    prefill: frozenset[str]  # deployments that continue a trailing assistant message


@dataclass(frozen=True, slots=True)
class Progress:
    """What has happened to the request so far."""

    order: tuple[str, ...]
    attempts: int = 0
    failed: frozenset[str] = frozenset()
    same_retries: Mapping[str, int] = field(default_factory=dict)
    backoffs: int = 0
    reasks: int = 0
    spent_tokens: int = 0
    spent_usd: float = 0.0
    turnout_max_tokens: int | None = None  # a limit turnout set (never the client's)


# -- what just happened -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failed:
    """An attempt failed; `sent_chars` > 0 when part of the answer already reached the client."""

    deployment: str
    error: UpstreamError
    sent_chars: int = 0
    sent_tokens: int = 0
    tool_calls_sent: bool = False
    completion_tokens: int = 0  # of this attempt, for a retry's room


@dataclass(frozen=True, slots=True)
class Answered:
    """An attempt answered; the answer is being validated."""

    deployment: str
    message: dict[str, Any] | None  # chat; None for text completions
    text: Any
    finish: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    streamed: bool = False  # the client already has the bytes: nothing can be taken back


# -- the steps --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    deployment: str
    why: dict[str, Any] = field(default_factory=dict)
    continuation: bool = False


@dataclass(frozen=True, slots=True)
class Backoff:
    deployment: str
    delay_s: float
    why: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Fallback:
    deployment: str
    why: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Continue:
    """Continue a broken stream on `deployment` from what the client already has."""

    deployment: str
    why: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reask:
    invalid: Invalid
    why: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Retry:
    """Truncated under `retry`: again at once with more room (a limit turnout itself sets)."""

    deployment: str
    max_tokens: int


@dataclass(frozen=True, slots=True)
class Finish:
    state: State
    why: dict[str, Any] = field(default_factory=dict)
    error: ApiError | None = None
    attempt_error: str | None = None  # what was wrong with the last attempt's answer


Step = Attempt | Backoff | Fallback | Continue | Reask | Retry | Finish


# -- attempts and budgets ---------------------------------------------------------------------


def budget_left(policy: LifecyclePolicy, p: Progress) -> str | None:
    """None if another attempt fits the budget, else why not."""
    b = policy.budget
    if b.max_total_tokens is not None and p.spent_tokens >= b.max_total_tokens:
        return f"token budget spent: {p.spent_tokens} of {b.max_total_tokens} tokens"
    if b.max_cost_usd is not None and p.spent_usd >= b.max_cost_usd:
        return f"cost budget spent: ${p.spent_usd:.6f} of ${b.max_cost_usd:.6f}"
    return None


def attempt(policy: LifecyclePolicy, p: Progress, deployment: str, **why: Any) -> Attempt | Finish:
    """An attempt on `deployment` if the budget allows one."""
    over = budget_left(policy, p)
    if over is not None:
        return _budget_exceeded(over, p)
    return Attempt(deployment, why, continuation=why.get("reason") == "continue")


def _budget_exceeded(why: str, p: Progress) -> Finish:
    error = ApiError(
        402,
        f"request budget exceeded after {p.attempts} attempts: {why}",
        type="budget_exceeded",
        code="budget_exceeded",
    )
    return Finish(State.BUDGET_EXCEEDED, {"reason": why}, error)


# -- after a failure --------------------------------------------------------------------------


def after_failure(
    policy: LifecyclePolicy, fleet: FleetView, p: Progress, what: Failed, jitter: float
) -> Step:
    """Fallback, backoff (same deployment or another), a stream's continuation, or the end.

    `jitter` is a uniform draw in [0, 1) for full-jitter backoff, made by the caller.
    """
    err, dep = what.error, what.deployment
    why: dict[str, Any] = {"deployment": dep, "failure": err.failure.value, "error": err.message}
    if err.status is not None:
        why["status"] = err.status
    if what.sent_chars or what.sent_tokens or what.tool_calls_sent:
        return _continue(policy, fleet, p, what, why)
    if err.failure is Failure.CONTEXT_EXCEEDED:
        return _larger_window(policy, fleet, p, what, why)
    if not err.failure.retryable:
        return fail_upstream(err, why, "not retryable", p.attempts)
    if p.attempts >= policy.max_attempts:
        return fail_upstream(err, why, "attempts exhausted", p.attempts)
    retry_after = err.retry_after_s
    fits = retry_after is None or retry_after <= policy.backoff.max_s
    if (
        err.failure.transient
        and fits
        and err.should_retry is not False
        and p.same_retries.get(dep, 0) < policy.same_deployment_retries
        and dep in fleet.available
    ):
        delay = _delay(policy, p.same_retries.get(dep, 0), retry_after, jitter)
        extra = {"retry_after_s": retry_after} if retry_after is not None else {}
        return Backoff(dep, delay, {**why, "next": dep, "same_deployment": True, **extra})
    failed = p.failed | {dep}
    later = p.order[p.order.index(dep) + 1 :] if dep in p.order else p.order
    fallback = next((d for d in later if d not in failed and d in fleet.available), None)
    if fallback is not None:
        return Fallback(fallback, {"to": fallback, **why})
    target = next((d for d in p.order if d in fleet.available), None)
    if target is None:
        return all_cooling(fleet, p.order)
    retry_after = retry_after if target == dep else None
    if retry_after is not None and retry_after > policy.backoff.max_s:
        return fail_upstream(
            err, {**why, "retry_after_s": retry_after}, "Retry-After exceeds backoff.max_s",
            p.attempts,
        )  # fmt: skip
    delay = _delay(policy, p.backoffs, retry_after, jitter)
    extra = {"retry_after_s": retry_after} if retry_after is not None else {}
    return Backoff(target, delay, {**why, "next": target, **extra})


def _delay(policy: LifecyclePolicy, k: int, retry_after_s: float | None, jitter: float) -> float:
    """Full jitter: uniform in [0, min(max, base·2^k)]; Retry-After wins when present."""
    if retry_after_s is not None:
        return retry_after_s
    return jitter * min(policy.backoff.max_s, policy.backoff.base_s * (2**k))


def _larger_window(
    policy: LifecyclePolicy, fleet: FleetView, p: Progress, what: Failed, why: dict[str, Any]
) -> Step:
    """The prompt does not fit: only a deployment with a larger window can take it."""
    dep = what.deployment
    had = fleet.windows.get(dep)
    if p.attempts < policy.max_attempts:
        for d in p.order:
            window = fleet.windows.get(d)
            if d == dep or d in p.failed or d not in fleet.available or window is None:
                continue
            if had is None or window > had:
                return Fallback(d, {"to": d, **why, "context_window": window})
    return fail_upstream(what.error, why, "no deployment with a larger context window", p.attempts)


def _continue(
    policy: LifecyclePolicy, fleet: FleetView, p: Progress, what: Failed, why: dict[str, Any]
) -> Step:
    """The stream broke after bytes reached the client: continue it, or end it cleanly."""
    dep = what.deployment
    why = {**why, "prefix_chars": what.sent_chars, "prefix_tokens": what.sent_tokens}
    if what.tool_calls_sent:
        return fail_upstream(what.error, why, "a tool call cannot be continued", p.attempts)
    if p.attempts >= policy.max_attempts:
        return fail_upstream(what.error, why, "attempts exhausted", p.attempts)
    # The same deployment first unless it stalled (it is likely still stuck), then the order.
    later = [d for d in p.order if d != dep]
    order = [*later, dep] if what.error.failure is Failure.TIMEOUT else [dep, *later]
    for d in order:
        if d in fleet.prefill and d in fleet.available and (d == dep or d not in p.failed):
            return Continue(d, {**why, "to": d})
    return fail_upstream(what.error, why, "no deployment can continue the stream", p.attempts)


def all_cooling(fleet: FleetView, order: tuple[str, ...]) -> Finish:
    wait = min((fleet.rest_s.get(d, 0.0) for d in order), default=0.0)
    error = ApiError(
        503,
        "every deployment of this model is cooling down after repeated failures",
        type="upstream_error",
        code="deployments_cooling_down",
        headers={
            "Retry-After": str(max(1, math.ceil(wait))),
            "x-should-retry": "true",
            "x-turnout-failure": "cooling_down",
        },
    )
    why = {"reason": "every deployment is cooling down", "retry_after_s": round(wait, 3)}
    return Finish(State.FAILED_UPSTREAM, why, error)


def fail_upstream(err: UpstreamError, why: dict[str, Any], reason: str, attempts: int) -> Finish:
    """The end: the client sees the upstream's own status and code where they are the reason."""
    status = _FAILURE_STATUS.get(err.failure, 502)
    if err.failure in (Failure.CLIENT_ERROR, Failure.CONTEXT_EXCEEDED) and err.status in (
        400, 404, 413, 422,
    ):  # fmt: skip
        status = err.status  # the request itself was the problem
    headers = {"x-turnout-failure": err.failure.value, "x-should-retry": "false"}
    if err.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after_s)))
        if err.failure in (Failure.RATE_LIMITED, Failure.OVERLOADED):
            headers["x-should-retry"] = "true"  # later, it may well work
    error = ApiError(
        status,
        f"{err.message} (after {attempts} attempt{'s' * (attempts != 1)}: {reason})",
        type="upstream_error",
        code=err.code or err.failure.value,
        param=err.param,
        headers=headers,
    )
    return Finish(State.FAILED_UPSTREAM, {"reason": reason, **why}, error)


# -- after an answer --------------------------------------------------------------------------


def after_answer(
    policy: LifecyclePolicy, model: ModelConfig, req: Request, fleet: FleetView, p: Progress,
    what: Answered,
) -> Step:  # fmt: skip
    """Validating: accept, flag as truncated, grow the room, re-ask, escalate, or refuse."""
    if what.finish == "length":
        return _truncated(policy, req, p, what)
    invalid = (
        validate_message(req.body, what.message or {})
        if what.message is not None
        else validate_text(what.text)
    )
    cascading = model.routing == "cascade" and not what.streamed
    if invalid is None and cascading:
        invalid = cascade_check(model.cascade, what.message, what.text)
    if invalid is None:
        return Finish(State.COMPLETED)
    if cascading:
        escalate = _escalate(policy, fleet, p, what, invalid)
        if escalate is not None:
            return escalate
    return _invalid(policy, p, what, invalid)


def _truncated(policy: LifecyclePolicy, req: Request, p: Progress, what: Answered) -> Step:
    rule = policy.on_truncation
    if rule == "retry" and not what.streamed and p.attempts < policy.max_attempts:
        grown = _grown(policy, req, p, what)
        if grown is not None:
            return Retry(what.deployment, grown)
    if req.structured or rule == "fail":
        why = "structured output" if req.structured else "on_truncation: fail"
        error = ApiError(
            502,
            f"the answer was cut off at the token limit ({what.completion_tokens} tokens); "
            f"not returned as a success ({why})",
            type="invalid_output",
            code="truncated",
            headers={"x-should-retry": "false"},
        )
        return Finish(State.INVALID_OUTPUT, {"kind": "truncated", "reason": why}, error)
    attrs: dict[str, Any] = {"policy": "streamed" if what.streamed else rule}
    if rule == "retry" and req.max_tokens is not None:
        attrs["ceiling"] = req.max_tokens  # the client's max_tokens: never raised
    return Finish(State.TRUNCATED, attrs)


def _grown(policy: LifecyclePolicy, req: Request, p: Progress, what: Answered) -> int | None:
    """More room, only where the limit is turnout's own; the client's is a ceiling."""
    if req.max_tokens is not None:
        return None
    current = p.turnout_max_tokens or 0
    grown = max(2 * current, 2 * what.completion_tokens, 16)
    left = policy.budget.max_total_tokens
    if left is not None:
        grown = min(grown, left - p.spent_tokens - what.prompt_tokens)
    if grown <= max(current, what.completion_tokens):
        return None
    return grown


def _escalate(
    policy: LifecyclePolicy, fleet: FleetView, p: Progress, what: Answered, invalid: Invalid
) -> Fallback | None:
    """Cascade: a cheap answer that fails its checks goes up to the next deployment."""
    dep = what.deployment
    later = p.order[p.order.index(dep) + 1 :] if dep in p.order else ()
    nxt = next((d for d in later if d in fleet.available), None)
    if nxt is None or p.attempts >= policy.max_attempts:
        return None
    why = {"reason": "escalate", "to": nxt, "deployment": dep, "kind": invalid.kind,
           "error": invalid.message}  # fmt: skip
    return Fallback(nxt, why)


def _invalid(policy: LifecyclePolicy, p: Progress, what: Answered, invalid: Invalid) -> Step:
    attrs = {"kind": invalid.kind, "error": invalid.message}
    can_reask = (
        not what.streamed
        and invalid.kind != "check_timeout"  # the schema, not the answer, is at fault
        and policy.on_invalid_output == "retry"
        and p.reasks < policy.max_reasks
        and p.attempts < policy.max_attempts
    )
    if can_reask:
        over = budget_left(policy, p)
        if over is not None:
            ended = _budget_exceeded(over, p)
            return Finish(ended.state, ended.why, ended.error, invalid.kind)
        return Reask(invalid, {"reask": p.reasks + 1, **attrs})
    error = ApiError(
        502,
        f"the model's answer was invalid ({invalid.kind}): {invalid.message}",
        type="invalid_output",
        code=invalid.kind,
        headers={"x-should-retry": "false"},
    )
    return Finish(State.INVALID_OUTPUT, attrs, error, invalid.kind)
