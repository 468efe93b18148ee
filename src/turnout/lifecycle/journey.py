"""One request's way through attempts, backoff, fallback, validation and re-asking.

Every decision ends in a `run.transition`; the table in `states.py` says whether it may.
"""

from __future__ import annotations

import asyncio
import copy
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.backends.base import Backend, Failure, Operation, UpstreamError, Usage
from turnout.config import DeploymentConfig, ModelConfig, Tenant
from turnout.errors import ApiError
from turnout.lifecycle.forwarding import forwardable
from turnout.lifecycle.policy import Breaker, backoff_delay, budget_left, tokens_left
from turnout.lifecycle.reask import reask_messages
from turnout.lifecycle.redaction import Redaction
from turnout.lifecycle.run import Attempt, Run
from turnout.lifecycle.states import State
from turnout.lifecycle.validate import (
    Invalid,
    cascade_check,
    is_structured,
    validate_message,
    validate_text,
)
from turnout.privacy.scanner import Scanner
from turnout.routing.admission import Gate, Shed, Ticket, identify
from turnout.routing.balance import Ask
from turnout.routing.policy import Decision
from turnout.routing.router import Router, estimate_prompt_tokens, max_output_tokens

_FAILURE_STATUS = {
    Failure.RATE_LIMITED: 429,
    Failure.OVERLOADED: 503,
    Failure.TIMEOUT: 504,
}


@dataclass(slots=True)
class Fleet:
    """What a journey may use: deployments, their backends and breakers."""

    deployments: Mapping[str, DeploymentConfig]
    backends: Mapping[str, Backend]
    breakers: Mapping[str, Breaker]
    rng: random.Random
    router: Router
    scanner: Scanner | None = None
    gates: Mapping[str, Gate] = field(default_factory=dict)
    tenants: Mapping[str, Tenant] = field(default_factory=dict)


class Journey:
    """Mutable per-request state for the decisions; the Run is the record of them."""

    def __init__(
        self,
        fleet: Fleet,
        run: Run,
        model: ModelConfig,
        body: dict[str, Any],
        op: Operation,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.fleet = fleet
        self.client_headers = headers or {}
        self.order: tuple[str, ...] = model.deployments
        self.decision: Decision | None = None
        self.run = run
        self.model = model
        self.policy = model.lifecycle
        self.body = body
        self.operation = op
        self.structured = op is Operation.CHAT and is_structured(body)
        self.retries = 0
        self.reasks = 0
        self.reask_allowed = True
        self.escalate_to: str | None = None
        self.holding: str | None = None  # the deployment the current attempt occupies
        self._redaction: Redaction | None = None
        self.gated: str | None = None  # the deployment whose admission gate this attempt holds
        self.ticket = Ticket("anonymous", 1, 1.0, None)
        self.failed: set[str] = set()
        self.counted: set[str] = set()  # deployments whose breaker this request has charged
        self.probe: str | None = None  # the deployment this request probes (half-open)
        self.error: ApiError | None = None
        self.ask: Ask | None = None  # the request as the balancer sees it (routing: balanced)

    # -- routing ---------------------------------------------------------------------------

    def route(self) -> str | None:
        """Decide where the request may run, in preference order, and record why."""
        router = self.fleet.router
        try:
            req = router.features(self.model, self.body, self.client_headers)
            self.ticket = identify(
                self.client_headers,
                self.fleet.tenants,
                self.model.deadline_ms,
                self.body.get("metadata"),
            )
        except ValueError as bad:
            self.error = ApiError(400, str(bad), code="invalid_value")
            self.run.transition(State.REJECTED, status=400, error=str(bad))
            return None
        except ApiError as exc:
            self.run.transition(State.REJECTED, status=exc.status, error=exc.message)
            self.error = exc
            return None
        if self.model.routing == "balanced" and router.balancer is not None:
            self.ask = router.balancer.ask(self.model.name, self.body, req.prompt_tokens)
        self.decision = decision = router.plan(self.model, req, self.ask)
        self.order = decision.order
        attrs: dict[str, Any] = {
            "routing": self.model.routing,
            "rule": decision.rule,
            "candidates": [v.as_dict() for v in decision.verdicts],
        }
        if self.model.routing == "policy":
            attrs["objective"] = self.model.objective
        if self.ask is not None:
            attrs["balance"] = self.model.balance
            attrs["order"] = list(decision.order)
            attrs["predicted_output_tokens"] = round(self.ask.output, 1)
        if req.sensitive:
            attrs["sensitive"] = req.sensitive
        if req.sticky_local:
            attrs["sticky_local"] = True
        if self.ticket.tenant != "anonymous":
            attrs["tenant"] = self.ticket.tenant
        if self.ticket.claim_ignored is not None:
            attrs["tenant_claim_ignored"] = self.ticket.claim_ignored
        if decision.refusal == "cooling":
            self._all_cooling(self.model.deployments)
            return None
        if decision.refusal is not None:
            self._refuse(decision.refusal, attrs)
            return None
        self.run.transition(State.ROUTED, chosen=decision.order[0], **attrs)
        return decision.order[0]

    def _refuse(self, refusal: str, attrs: dict[str, Any]) -> None:
        assert self.decision is not None
        reasons = "; ".join(f"{v.name}: {v.reason}" for v in self.decision.verdicts if v.reason)
        if refusal == "blocked":
            self.run.transition(State.BLOCKED, **attrs)
            self.error = ApiError(
                403,
                f"no deployment of {self.model.name!r} may take this request ({reasons})",
                type="blocked",
                code="blocked_by_policy",
            )
        else:
            self.run.transition(State.REJECTED, **attrs)
            self.error = ApiError(
                400,
                f"no deployment of {self.model.name!r} can serve this request ({reasons})",
                code="no_capable_deployment",
            )
        return None

    def _all_cooling(self, order: tuple[str, ...]) -> None:
        wait = min(self.fleet.breakers[d].remaining_s() for d in order)
        self.run.transition(
            State.FAILED_UPSTREAM, reason="every deployment is cooling down", retry_after_s=wait
        )
        self.error = ApiError(
            503,
            f"every deployment of {self.model.name!r} is cooling down after repeated failures",
            type="upstream_error",
            code="deployments_cooling_down",
            headers={"Retry-After": str(max(1, round(wait)))},
        )
        return None

    # -- attempts --------------------------------------------------------------------------

    @property
    def attempt(self) -> Attempt:
        return self.run.attempts[-1]

    def start_attempt(self, deployment: str, **why: Any) -> bool:
        over = budget_left(self.policy.budget, self.run)
        if over is not None:
            self._budget_exceeded(over)
            return False
        number = len(self.run.attempts) + 1
        self.run.transition(State.ATTEMPTING, attempt=number, deployment=deployment, **why)
        self.run.attempts.append(Attempt(number, deployment, started=self.run.now()))
        self.fleet.router.estimates[deployment].in_flight += 1
        self.holding = deployment
        if self.fleet.breakers[deployment].attempt_started():
            self.probe = deployment
            self.run.events[-1].attrs["breaker_probe"] = True
        balancer = self.fleet.router.balancer
        if self.ask is not None and balancer is not None:
            balancer.start(deployment, self._flight_key, self.ask, streamed=self.run.stream)
        return True

    @property
    def _flight_key(self) -> tuple[str, int]:
        return (self.run.id, len(self.run.attempts))

    def streamed_tokens(self, n: int = 1) -> None:
        """Tokens relayed to the client: the balancer's view of how far the answer has got."""
        balancer = self.fleet.router.balancer
        if self.ask is not None and balancer is not None and self.holding is not None:
            balancer.tokens(self._flight_key, n)

    async def begin(self, deployment: str, **why: Any) -> bool:
        """Admission, then the attempt; False when the request ended instead (shed, budget)."""
        if not await self._admit(deployment):
            return False
        if not self.start_attempt(deployment, **why):
            self._leave_gate()
            return False
        return True

    async def _admit(self, deployment: str) -> bool:
        gate = self.fleet.gates.get(deployment)
        first = self.run.state is State.ROUTED  # later attempts wait rather than shed
        deadline = first and self.ticket.deadline_s is not None
        balanced = self._balanced_completion_s(deployment) if deadline else None
        if gate is None:
            if balanced is not None and self.ticket.deadline_s is not None:
                left = self.ticket.deadline_s - (self.run.now() - self.run.started)
                if balanced > left:
                    return self._shed(
                        deployment,
                        f"predicted to finish in {balanced * 1000:.0f} ms on the least busy"
                        f" instance, {left * 1000:.0f} ms left of its deadline",
                        balanced - left,
                    )
            return True
        t = self.ticket
        est = self.fleet.router.estimates[deployment]
        prompt_tokens = estimate_prompt_tokens(self.body)
        latency_s, parts = est.predict(max_output_tokens(self.body), prompt_tokens)
        service_s = latency_s - parts["queue_s"]  # the gate predicts the wait itself
        if balanced is not None:
            service_s = balanced  # the instance's own queue and batch, not a route average
        tokens = parts["output_tokens"] + prompt_tokens
        timeout = None
        if first and t.deadline_s is not None:
            left = t.deadline_s - (self.run.now() - self.run.started)
            wait = gate.predicted_wait_s(t.priority, service_s)
            if wait + service_s > left:
                return self._shed(
                    deployment,
                    f"predicted to finish in {(wait + service_s) * 1000:.0f}"
                    f" ms, {left * 1000:.0f} ms left of its deadline",
                    wait,
                )
            timeout = left - service_s
        est.queued += 1  # routing decisions meanwhile must see the queue, not only the slots
        try:
            await gate.enter(t.priority, t.tenant, tokens, t.weight, timeout, queue_limit=first)
        except Shed as shed:
            return self._shed(deployment, shed.reason, shed.retry_after_s)
        finally:
            est.queued -= 1
        self.gated = deployment
        return True

    def _balanced_completion_s(self, deployment: str) -> float | None:
        balancer = self.fleet.router.balancer
        if self.ask is None or balancer is None:
            return None
        return balancer.completion_s(deployment, self.ask)

    def _shed(self, deployment: str, reason: str, retry_after_s: float) -> bool:
        self.run.transition(
            State.SHED,
            deployment=deployment,
            reason=reason,
            tenant=self.ticket.tenant,
            priority=self.ticket.priority,
        )
        self.error = ApiError(
            503,
            f"shed: {reason}",
            type="overloaded",
            code="shed",
            headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
        )
        return False

    def _leave_gate(self) -> None:
        if self.gated is not None:
            self.fleet.gates[self.gated].leave()
            self.gated = None

    def redaction_for(self, deployment: str) -> Redaction | None:
        """Placeholders for a deployment that may only see the request redacted."""
        if self.decision is None or deployment not in self.decision.redact:
            return None
        if self._redaction is None:
            assert self.fleet.scanner is not None, "redaction decided without a scanner"
            self._redaction = Redaction(self.fleet.scanner)
        return self._redaction

    def upstream_body(self, deployment: str) -> dict[str, Any]:
        """What this attempt sends; fields held back are named on its `attempting` event."""
        body, held = forwardable(self.body, self.fleet.deployments[deployment])
        if held and self.run.state is State.ATTEMPTING:
            self.run.events[-1].attrs["fields_not_forwarded"] = [k[:64] for k in held[:32]]
        redaction = self.redaction_for(deployment)
        return body if redaction is None else redaction.body(body)

    def release(self, output_tokens: int | None = None, ok: bool = False) -> None:
        """The attempt no longer occupies its deployment (it ended, or was abandoned)."""
        if self.holding is not None:
            self.fleet.router.estimates[self.holding].in_flight -= 1
            balancer = self.fleet.router.balancer
            if self.ask is not None and balancer is not None:
                balancer.finish(self._flight_key, output_tokens=output_tokens, ok=ok)
            self.holding = None
        self._leave_gate()
        if self.probe is not None:  # ended without a verdict (the client left)
            self.fleet.breakers[self.probe].probe_ended()
            self.probe = None

    def attempt_succeeded(self, usage: Usage, finish: str | None) -> None:
        self.probe = None
        self.release(usage.completion_tokens, ok=True)
        a = self.attempt
        a.ended = self.run.now()
        a.ok = True
        a.finish_reason = finish
        self._account(a, usage)
        self.fleet.breakers[a.deployment].record_success()

    def _account(self, a: Attempt, usage: Usage) -> None:
        dep = self.fleet.deployments[a.deployment]
        a.prompt_tokens = usage.prompt_tokens
        a.completion_tokens = usage.completion_tokens
        a.cost_usd = dep.price.cost(usage.prompt_tokens, usage.completion_tokens)
        if not a.cost_usd and dep.hourly_usd and a.ended is not None:
            # Owned hardware: the share of the hour this attempt held one of its slots.
            held_s = a.ended - a.started
            a.cost_usd = dep.hourly_usd / 3600 * held_s / (dep.max_concurrency or 1)

    def attempt_failed(self, err: UpstreamError, usage: Usage | None = None) -> None:
        probed, self.probe = self.probe, None
        self.release()
        a = self.attempt
        a.ended = self.run.now()
        a.error = err.failure.value
        a.status = err.status
        if usage is not None:
            self._account(a, usage)
        breaker = self.fleet.breakers[a.deployment]
        if err.failure.unhealthy and (probed is not None or a.deployment not in self.counted):
            self.counted.add(a.deployment)
            if breaker.record_failure(probe=probed is not None):
                self.run.events[-1].attrs.setdefault("breaker_opened", a.deployment)
        elif probed is not None:
            breaker.record_success()  # it answered: the request, not the deployment, was wrong

    async def after_failure(self, err: UpstreamError) -> str | None:
        """Decide what follows a failed attempt: fallback, backoff, or the end."""
        self.attempt_failed(err)
        dep = self.attempt.deployment
        why: dict[str, Any] = {
            "deployment": dep,
            "failure": err.failure.value,
            "error": err.message,
        }
        if err.status is not None:
            why["status"] = err.status
        if not err.failure.retryable:
            self._fail_upstream(err, why, reason="not retryable")
            return None
        if len(self.run.attempts) >= self.policy.max_attempts:
            self._fail_upstream(err, why, reason="attempts exhausted")
            return None
        self.failed.add(dep)
        order = self.order
        breakers = self.fleet.breakers
        after = order[order.index(dep) + 1 :]
        fallback = next(
            (d for d in after if d not in self.failed and breakers[d].available()), None
        )
        if fallback is not None:
            self.run.transition(State.FALLBACK, to=fallback, **why)
            return fallback
        target = next((d for d in order if breakers[d].available()), None)
        if target is None:
            self._all_cooling(order)
            return None
        retry_after = err.retry_after_s if target == dep else None
        if retry_after is not None and retry_after > self.policy.backoff.max_s:
            why["retry_after_s"] = retry_after
            self._fail_upstream(err, why, reason="Retry-After exceeds backoff.max_s")
            return None
        delay = backoff_delay(self.policy.backoff, self.retries, retry_after, self.fleet.rng)
        self.retries += 1
        self.run.transition(
            State.BACKOFF,
            delay_s=round(delay, 4),
            next=target,
            **why,
            **({"retry_after_s": retry_after} if retry_after is not None else {}),
        )
        if delay > 0:
            await asyncio.sleep(delay)
        return target

    def _fail_upstream(self, err: UpstreamError, why: dict[str, Any], reason: str) -> None:
        self.run.transition(State.FAILED_UPSTREAM, reason=reason, **why)
        status = _FAILURE_STATUS.get(err.failure, 502)
        if err.failure is Failure.CLIENT_ERROR and err.status in (400, 404, 413, 422):
            status = err.status  # the request itself was the problem
        headers = {}
        if err.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, round(err.retry_after_s)))
        n = len(self.run.attempts)
        self.error = ApiError(
            status,
            f"{err.message} (after {n} attempt{'s' * (n != 1)}: {reason})",
            type="upstream_error",
            code=err.failure.value,
            headers=headers,
        )
        return None

    def _budget_exceeded(self, why: str) -> None:
        self.run.transition(State.BUDGET_EXCEEDED, reason=why)
        self.error = ApiError(
            402,
            f"request budget exceeded after {len(self.run.attempts)} attempts: {why}",
            type="budget_exceeded",
            code="budget_exceeded",
        )

    # -- validation --------------------------------------------------------------------------

    def judge(self, message: dict[str, Any] | None, text: Any, finish: str | None) -> str:
        """Validate an answer; returns "done", "retry" (again, more room), "reask" or "fail"."""
        self.run.transition(State.VALIDATING, finish_reason=finish)
        if finish == "length":
            return self._truncated()
        invalid = (
            validate_message(self.body, message or {})
            if message is not None
            else (validate_text(text))
        )
        cascading = self.model.routing == "cascade" and self.reask_allowed
        if invalid is None and cascading:
            invalid = cascade_check(self.model.cascade, message, text)
        if invalid is None:
            self.run.transition(State.COMPLETED)
            return "done"
        if cascading and self._escalate(invalid):
            return "escalate"
        return self._invalid(invalid, message)

    def _escalate(self, invalid: Invalid) -> bool:
        """Cascade: a cheap answer that fails its checks goes up to the next deployment."""
        dep = self.attempt.deployment
        later = self.order[self.order.index(dep) + 1 :]
        nxt = next((d for d in later if self.fleet.breakers[d].available()), None)
        if nxt is None or len(self.run.attempts) >= self.policy.max_attempts:
            return False
        self.attempt.error = invalid.kind
        self.run.transition(
            State.FALLBACK,
            reason="escalate",
            to=nxt,
            deployment=dep,
            kind=invalid.kind,
            error=invalid.message,
        )
        self.escalate_to = nxt
        return True

    def _truncated(self) -> str:
        policy = self.policy.on_truncation
        if policy == "retry":
            grown = self._grow_max_tokens()
            if grown is not None:
                self.body["max_tokens"] = grown
                self.body.pop("max_completion_tokens", None)
                return "retry"
        if self.structured or policy == "fail":
            limit = self.attempt.completion_tokens
            why = "structured output" if self.structured else "on_truncation: fail"
            self.run.transition(State.INVALID_OUTPUT, kind="truncated", reason=why)
            self.error = ApiError(
                502,
                f"the answer was cut off at the token limit ({limit} tokens); "
                f"not returned as a success ({why})",
                type="invalid_output",
                code="truncated",
            )
            return "fail"
        self.run.transition(State.TRUNCATED, policy=policy)
        return "done"

    def _grow_max_tokens(self) -> int | None:
        if len(self.run.attempts) >= self.policy.max_attempts:
            return None
        current = self.body.get("max_tokens") or self.body.get("max_completion_tokens")
        used = self.attempt.completion_tokens
        grown = max(2 * int(current or 0), 2 * used, 16)
        left = tokens_left(self.policy.budget, self.run)
        if left is not None:
            grown = min(grown, left - self.attempt.prompt_tokens)
        if grown <= int(current or used):
            return None
        return grown

    def _invalid(self, invalid: Invalid, message: dict[str, Any] | None) -> str:
        attrs = {"kind": invalid.kind, "error": invalid.message}
        self.attempt.error = invalid.kind
        can_reask = (
            self.reask_allowed
            and invalid.kind != "check_timeout"  # the schema, not the answer, is at fault
            and self.policy.on_invalid_output == "retry"
            and self.reasks < self.policy.max_reasks
            and len(self.run.attempts) < self.policy.max_attempts
        )
        if can_reask:
            over = budget_left(self.policy.budget, self.run)
            if over is not None:
                self._budget_exceeded(over)
                return "fail"
            self.reasks += 1
            self.run.transition(State.REASKING, reask=self.reasks, **attrs)
            if message is not None:  # a text completion is simply asked again
                self.body["messages"] = reask_messages(self.body["messages"], invalid, message)
            return "reask"
        self.run.transition(State.INVALID_OUTPUT, **attrs)
        self.error = ApiError(
            502,
            f"the model's answer was invalid ({invalid.kind}): {invalid.message}",
            type="invalid_output",
            code=invalid.kind,
        )
        return "fail"

    # -- replies ------------------------------------------------------------------------------

    def reply_headers(self) -> dict[str, str]:
        h = {"x-turnout-attempts": str(len(self.run.attempts))}
        if self.decision is not None and self.decision.chosen is not None:
            h["x-turnout-route"] = f"{self.decision.chosen}; rule={self.decision.rule}"
        if self.run.attempts:
            h["x-turnout-deployment"] = self.attempt.deployment
        if self.run.outcome is not None:
            h["x-turnout-outcome"] = self.run.outcome.value
        return h


def fresh_body(body: dict[str, Any]) -> dict[str, Any]:
    """A copy the journey may change (re-asks, max_tokens) without touching the client's."""
    out = dict(body)
    if "messages" in out:
        out["messages"] = copy.copy(out["messages"])
    return out
