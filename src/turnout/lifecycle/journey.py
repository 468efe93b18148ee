"""One request's way through routing and attempts: its state, and the transitions steps make.

Which step comes next is decided in `decide.py`; a Journey gives that function its data
(`progress`, `view`) and performs the step it returns: each step is one transition of the table.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from turnout.backends.base import Operation, UpstreamError, Usage
from turnout.config import ModelConfig
from turnout.errors import ApiError
from turnout.lifecycle import decide
from turnout.lifecycle.decide import (
    Answered,
    Attempt,
    Backoff,
    Continue,
    Failed,
    Fallback,
    Finish,
    FleetView,
    Progress,
    Reask,
    Retry,
    Step,
)
from turnout.lifecycle.fleet import Fleet
from turnout.lifecycle.forwarding import forwardable
from turnout.lifecycle.lease import Admission, Lease
from turnout.lifecycle.reask import reask_messages
from turnout.lifecycle.redaction import Redaction
from turnout.lifecycle.request import Request
from turnout.lifecycle.run import Attempt as AttemptRecord
from turnout.lifecycle.run import Run
from turnout.lifecycle.states import State
from turnout.routing.admission import Shed, Ticket, identify
from turnout.routing.balance import Ask
from turnout.routing.policy import Decision
from turnout.routing.router import estimate_prompt_tokens, max_output_tokens

if TYPE_CHECKING:
    from turnout.telemetry.calls import CallSpan


class Journey:
    """Mutable per-request state; the Run is the record of what happened to it."""

    def __init__(self, fleet: Fleet, run: Run, model: ModelConfig, request: Request) -> None:
        self.fleet = fleet
        self.run = run
        self.model = model
        self.policy = model.lifecycle
        self.request = request
        self.order: tuple[str, ...] = model.deployments
        self.decision: Decision | None = None
        self.ticket = Ticket("anonymous", 1, 1.0, None)
        self.ask: Ask | None = None  # the request as the balancer sees it (routing: balanced)
        self.error: ApiError | None = None
        self.failed: set[str] = set()
        self.counted: set[str] = set()  # deployments whose breaker this request has charged
        self.same_retries: dict[str, int] = {}
        self.backoffs = 0
        self.reasks = 0
        self.turnout_max_tokens: int | None = None
        self.lease: Lease | None = None  # the current attempt's hold on its deployment
        self.call: CallSpan | None = None  # the current attempt's span, when tracing
        self._redaction: Redaction | None = None

    @property
    def body(self) -> dict[str, Any]:
        return self.request.body

    @property
    def operation(self) -> Operation:
        return self.request.operation

    # -- what the decision reads ------------------------------------------------------------

    def progress(self) -> Progress:
        return Progress(
            order=self.order,
            attempts=len(self.run.attempts),
            failed=frozenset(self.failed),
            same_retries=dict(self.same_retries),
            backoffs=self.backoffs,
            reasks=self.reasks,
            spent_tokens=self.run.total_tokens,
            spent_usd=self.run.cost_usd,
            turnout_max_tokens=self.turnout_max_tokens,
        )

    def view(self) -> FleetView:
        names = self.model.deployments
        breakers, deps = self.fleet.breakers, self.fleet.deployments
        continues = self.operation is Operation.COMPLETION and isinstance(
            self.body.get("prompt"), str
        )
        return FleetView(
            available=frozenset(d for d in names if breakers[d].available()),
            rest_s={d: breakers[d].remaining_s() for d in names},
            windows={d: deps[d].context_window for d in names},
            prefill=frozenset(d for d in names if continues or deps[d].supports_prefill),
        )

    def after_failure(self, what: Failed) -> Step:
        self.failed.add(what.deployment)
        return decide.after_failure(
            self.policy, self.view(), self.progress(), what, self.fleet.rng.random()
        )

    def after_answer(self, what: Answered) -> Step:
        return decide.after_answer(
            self.policy, self.model, self.request, self.view(), self.progress(), what
        )

    # -- routing ---------------------------------------------------------------------------

    def route(self) -> Step:
        """Decide where the request may run, in preference order, and record why."""
        router = self.fleet.router
        try:
            req = router.features(self.model, self.body, self.request.headers)
            self.ticket = identify(
                self.request.headers,
                self.fleet.tenants,
                self.model.deadline_ms,
                self.body.get("metadata"),
                self.request.caller,
            )
        except ValueError as bad:
            error = ApiError(400, str(bad), code="invalid_value")
            return Finish(State.REJECTED, {"status": 400, "error": str(bad)}, error)
        except ApiError as exc:
            return Finish(State.REJECTED, {"status": exc.status, "error": exc.message}, exc)
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
            if self.request.caller is None:  # a key's tenant is recorded as the key names it
                self.run.tenant = self.ticket.tenant
        if self.ticket.claim_ignored is not None:
            attrs["tenant_claim_ignored"] = self.ticket.claim_ignored
        if decision.refusal == "cooling":
            return decide.all_cooling(self.view(), self.model.deployments)
        if decision.refusal is not None:
            return self._refusal(decision.refusal, attrs)
        self.run.transition(State.ROUTED, chosen=decision.order[0], **attrs)
        return decide.attempt(self.policy, self.progress(), decision.order[0])

    def _refusal(self, refusal: str, attrs: dict[str, Any]) -> Finish:
        assert self.decision is not None
        reasons = "; ".join(f"{v.name}: {v.reason}" for v in self.decision.verdicts if v.reason)
        if refusal == "blocked":
            error = ApiError(
                403,
                f"no deployment of {self.model.name!r} may take this request ({reasons})",
                type="blocked",
                code="blocked_by_policy",
            )
            return Finish(State.BLOCKED, attrs, error)
        error = ApiError(
            400,
            f"no deployment of {self.model.name!r} can serve this request ({reasons})",
            code="no_capable_deployment",
        )
        return Finish(State.REJECTED, attrs, error)

    # -- performing steps --------------------------------------------------------------------

    def perform(self, step: Step) -> Step:
        """Make the step's one transition; returns the attempt that follows it, or the end."""
        if isinstance(step, Finish):
            self.finish(step)
            return step
        if isinstance(step, Attempt):
            return step
        if isinstance(step, Retry):
            self.body["max_tokens"] = step.max_tokens
            self.body.pop("max_completion_tokens", None)
            self.turnout_max_tokens = step.max_tokens
            why = {"reason": "truncated", "max_tokens": step.max_tokens}
            return decide.attempt(self.policy, self.progress(), step.deployment, **why)
        if isinstance(step, Backoff):
            self.backoffs += 1
            if step.why.get("same_deployment"):
                self.same_retries[step.deployment] = self.same_retries.get(step.deployment, 0) + 1
            self.run.transition(State.BACKOFF, delay_s=round(step.delay_s, 4), **step.why)
            return decide.attempt(self.policy, self.progress(), step.deployment)
        if isinstance(step, Fallback):
            if step.why.get("reason") == "escalate":
                self.attempt.error = step.why["kind"]
            self.run.transition(State.FALLBACK, **step.why)
            why = {"reason": "escalate"} if step.why.get("reason") == "escalate" else {}
            return decide.attempt(self.policy, self.progress(), step.deployment, **why)
        if isinstance(step, Continue):
            self.run.transition(State.CONTINUING, **step.why)
            return decide.attempt(self.policy, self.progress(), step.deployment, reason="continue")
        assert isinstance(step, Reask)
        self.reasks += 1
        self.attempt.error = step.invalid.kind
        self.run.transition(State.REASKING, **step.why)
        message = self.run.response_body
        if self.operation is Operation.CHAT and isinstance(message, dict):
            choice = (message.get("choices") or [{}])[0]
            answer = choice.get("message") if isinstance(choice, dict) else None
            self.body["messages"] = reask_messages(
                self.body["messages"], step.invalid, answer if isinstance(answer, dict) else {}
            )
        return decide.attempt(self.policy, self.progress(), self._last_deployment, reason="reask")

    @property
    def _last_deployment(self) -> str:
        return self.run.attempts[-1].deployment if self.run.attempts else self.order[0]

    def finish(self, step: Finish) -> None:
        """The terminal transition; the error, if any, is what the client will see."""
        if step.attempt_error is not None and self.run.attempts:
            self.attempt.error = step.attempt_error
        self.run.transition(step.state, **step.why)
        if step.error is not None:
            self.error = step.error

    # -- attempts --------------------------------------------------------------------------

    @property
    def attempt(self) -> AttemptRecord:
        return self.run.attempts[-1]

    def new_lease(self, deployment: str) -> Lease:
        key = (self.run.id, len(self.run.attempts) + 1)
        self.lease = Lease(self.fleet, deployment, key, self.ask)
        return self.lease

    def admission(self, deployment: str) -> Admission | Finish | None:
        """How the attempt waits at the gate, or the shed that ends the request instead."""
        gate = self.fleet.gates.get(deployment)
        first = self.run.state is State.ROUTED  # later attempts wait rather than shed
        deadline = first and self.ticket.deadline_s is not None
        balanced = self._balanced_completion_s(deployment) if deadline else None
        left = None
        if self.ticket.deadline_s is not None:
            left = self.ticket.deadline_s - (self.run.now() - self.run.started)
        if gate is None:
            if balanced is not None and left is not None and balanced > left:
                return self.shed(
                    deployment,
                    f"predicted to finish in {balanced * 1000:.0f} ms on the least busy"
                    f" instance, {left * 1000:.0f} ms left of its deadline",
                    balanced - left,
                )
            return None
        t = self.ticket
        est = self.fleet.router.estimates[deployment]
        prompt_tokens = estimate_prompt_tokens(self.body)
        latency_s, parts = est.predict(max_output_tokens(self.body), prompt_tokens)
        service_s = latency_s - parts["queue_s"]  # the gate predicts the wait itself
        if balanced is not None:
            service_s = balanced  # the instance's own queue and batch, not a route average
        tokens = parts["output_tokens"] + prompt_tokens
        timeout = None
        if first and left is not None:
            wait = gate.predicted_wait_s(t.priority, service_s)
            if wait + service_s > left:
                return self.shed(
                    deployment,
                    f"predicted to finish in {(wait + service_s) * 1000:.0f}"
                    f" ms, {left * 1000:.0f} ms left of its deadline",
                    wait,
                )
            timeout = left - service_s
        return Admission(t, tokens, timeout, queue_limit=first)

    def _balanced_completion_s(self, deployment: str) -> float | None:
        balancer = self.fleet.router.balancer
        if self.ask is None or balancer is None:
            return None
        return balancer.completion_s(deployment, self.ask)

    def shed(self, deployment: str, reason: str, retry_after_s: float) -> Finish:
        why = {"deployment": deployment, "reason": reason, "tenant": self.ticket.tenant,
               "priority": self.ticket.priority}  # fmt: skip
        error = ApiError(
            503,
            f"shed: {reason}",
            type="overloaded",
            code="shed",
            headers={
                "Retry-After": str(max(1, math.ceil(retry_after_s))),
                "x-should-retry": "true",
                "x-turnout-failure": "shed",
            },
        )
        return Finish(State.SHED, why, error)

    async def enter(self, step: Attempt, lease: Lease) -> Finish | None:
        """Admission, then the attempt's transition; a Finish when the request ended instead."""
        admission = self.admission(step.deployment)
        if isinstance(admission, Finish):
            return admission
        try:
            await lease.admit(admission)
        except Shed as shed:
            return self.shed(step.deployment, shed.reason, shed.retry_after_s)
        number = len(self.run.attempts) + 1
        self.run.transition(
            State.ATTEMPTING, attempt=number, deployment=step.deployment, **step.why
        )
        wire_out = self.fleet.deployments[step.deployment].wire_out(self.run.operation)
        self.run.attrs["wire_out"] = wire_out  # the format of the attempt that answers, in the end
        if wire_out != self.run.wire:
            self.run.events[-1].attrs["wire_out"] = wire_out
        record = AttemptRecord(number, step.deployment, started=self.run.now())
        if step.continuation:
            record.continuation = True
        self.run.attempts.append(record)
        if lease.occupy(streamed=self.run.stream):
            self.run.events[-1].attrs["breaker_probe"] = True
        return None

    def redaction_for(self, deployment: str) -> Redaction | None:
        """Placeholders for a deployment that may only see the request redacted."""
        if self.decision is None or deployment not in self.decision.redact:
            return None
        if self._redaction is None:
            assert self.fleet.scanner is not None, "redaction decided without a scanner"
            self._redaction = Redaction(self.fleet.scanner)
        return self._redaction

    def upstream_body(
        self, deployment: str, prefix: str | None = None, sent_tokens: int = 0
    ) -> dict[str, Any]:
        """What this attempt sends; fields held back are named on its `attempting` event.

        With `prefix`, a continuation: the answer so far as a trailing assistant message (or
        appended to a completion's prompt), with the room the client's limit still leaves.
        """
        dep = self.fleet.deployments[deployment]
        body, held = forwardable(self.body, dep)
        if held and self.run.state is State.ATTEMPTING:
            self.run.events[-1].attrs["fields_not_forwarded"] = [k[:64] for k in held[:32]]
        if prefix is not None:
            body = _continuation(body, self.operation, prefix, dep.prefill_fields)
            for key in ("max_tokens", "max_completion_tokens"):
                if isinstance(body.get(key), int):
                    body[key] = max(1, body[key] - sent_tokens)
        redaction = self.redaction_for(deployment)
        return body if redaction is None else redaction.body(body)

    def call_headers(self, body: dict[str, Any]) -> dict[str, str]:
        """The attempt's call begins: its span opens, and the headers that carry it upstream."""
        tracer = self.fleet.tracer
        if tracer is None:
            return {}
        self.call = tracer.call(self.run, self.attempt, body)
        return self.call.headers

    def _end_call(self, a: AttemptRecord, usage: Usage | None) -> None:
        if self.call is not None:
            self.call.end(a, usage)
            self.call = None

    def succeeded(self, usage: Usage, finish: str | None) -> None:
        lease = self.lease
        if lease is not None:
            lease.verdict, lease.ok, lease.output_tokens = True, True, usage.completion_tokens
            lease.release()
        a = self.attempt
        a.ended = self.run.now()
        a.ok = True
        a.finish_reason = finish
        self._account(a, usage)
        self._end_call(a, usage)
        self.fleet.breakers[a.deployment].record_success()

    def failed_with(self, err: UpstreamError, usage: Usage | None = None) -> None:
        lease = self.lease
        probed = lease is not None and lease.probe
        if lease is not None:
            lease.verdict = True
            lease.release()
        a = self.attempt
        a.ended = self.run.now()
        a.error = err.failure.value
        a.status = err.status
        if usage is not None:
            self._account(a, usage)
        self._end_call(a, usage)
        breaker = self.fleet.breakers[a.deployment]
        if err.failure.unhealthy and (probed or a.deployment not in self.counted):
            self.counted.add(a.deployment)
            if breaker.record_failure(probe=probed):
                self.run.events[-1].attrs.setdefault("breaker_opened", a.deployment)
        elif probed:
            breaker.record_success()  # it answered: the request, not the deployment, was wrong

    def _account(self, a: AttemptRecord, usage: Usage) -> None:
        dep = self.fleet.deployments[a.deployment]
        a.prompt_tokens = usage.prompt_tokens
        a.completion_tokens = usage.completion_tokens
        a.cost_usd = dep.price.cost(usage.prompt_tokens, usage.completion_tokens)
        if not a.cost_usd and dep.hourly_usd and a.ended is not None:
            # Owned hardware: the share of the hour this attempt held one of its slots.
            held_s = a.ended - a.started
            a.cost_usd = dep.hourly_usd / 3600 * held_s / (dep.max_concurrency or 1)

    # -- replies ------------------------------------------------------------------------------

    def reply_headers(self) -> dict[str, str]:
        h = {"x-turnout-attempts": str(len(self.run.attempts))}
        if self.decision is not None and self.decision.chosen is not None:
            h["x-turnout-route"] = f"{self.decision.chosen}; rule={self.decision.rule}"
        if self.run.attempts:
            h["x-turnout-deployment"] = self.attempt.deployment
        if self.run.outcome is not None:
            h["x-turnout-outcome"] = self.run.outcome.value
            h["x-turnout-total-tokens"] = str(self.run.total_tokens)
            h["x-turnout-cost-usd"] = f"{self.run.cost_usd:.8f}".rstrip("0").rstrip(".") or "0"
        return h


def _continuation(
    body: dict[str, Any], op: Operation, prefix: str, fields: tuple[tuple[str, Any], ...]
) -> dict[str, Any]:
    out = dict(body)
    if op is Operation.COMPLETION:
        out["prompt"] = str(body.get("prompt", "")) + prefix
        return out
    out["messages"] = [*body.get("messages", ()), {"role": "assistant", "content": prefix}]
    out.update(dict(fields))
    return out


def estimate_broken_usage(body: dict[str, Any], sent_tokens: int) -> Usage:
    """An attempt that broke without a usage report: count what went out."""
    return Usage(estimate_prompt_tokens(body), sent_tokens)


__all__ = ["Journey", "estimate_broken_usage"]
