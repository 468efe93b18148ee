"""Gathers what a decision needs — estimates, capabilities, a privacy scan — and asks `decide`."""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from turnout.config import DeploymentConfig, ModelConfig
from turnout.lifecycle.policy import Breaker
from turnout.routing.admission import milliseconds
from turnout.routing.balance import Ask, Ranking
from turnout.routing.estimates import Estimates
from turnout.routing.policy import Candidate, Decision, RequestFeatures, Verdict, decide

if TYPE_CHECKING:
    from turnout.routing.balancer import Balancer

LATENCY_BUDGET_HEADER = "x-turnout-latency-budget-ms"
# A deployment observed fewer times than this gets every EXPLORE_EVERY-th request it could take.
EXPLORE_UNTIL = 5
EXPLORE_EVERY = 5
CONVERSATION_HEADER = "x-turnout-conversation-id"


class StickyConversations:
    """Conversation ids that carried sensitive data: they stay local. Bounded, oldest forgotten."""

    def __init__(self, capacity: int, ttl_s: float = 24 * 3600) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()

    def mark(self, conversation: str) -> None:
        if self.capacity <= 0:
            return
        self._seen[conversation] = time.monotonic()
        self._seen.move_to_end(conversation)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def __contains__(self, conversation: str) -> bool:
        at = self._seen.get(conversation)
        return at is not None and time.monotonic() - at < self.ttl_s


def _metadata(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, dict) else {}


def conversation_id(body: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    value = headers.get(CONVERSATION_HEADER) or _metadata(body).get("conversation_id")
    if not value:
        return None
    if len(str(value)) > 256:  # remembered per conversation: a client must not grow the memory
        from turnout.errors import ApiError

        raise ApiError(
            400,
            "a conversation id is at most 256 characters",
            code="invalid_value",
            param=CONVERSATION_HEADER,
        )
    return str(value)


def latency_budget_s(
    model: ModelConfig, body: Mapping[str, Any], headers: Mapping[str, str]
) -> float | None:
    raw = headers.get(LATENCY_BUDGET_HEADER) or _metadata(body).get("latency_budget_ms")
    if raw is not None:
        return milliseconds(raw, LATENCY_BUDGET_HEADER) / 1000
    return None if model.latency_budget_ms is None else model.latency_budget_ms / 1000


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """~4 characters a token: cheap, and the context check only needs the order of magnitude."""
    chars = 0
    messages = body.get("messages")
    for m in messages if isinstance(messages, list) else ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(
                len(p["text"])
                for p in content
                if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        chars += len(prompt)
    return chars // 4 + 1


def max_output_tokens(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_tokens") or body.get("max_completion_tokens")
    return int(value) if isinstance(value, int) else None


def predicted_cost(
    dep: DeploymentConfig, est_tokens_per_s: float, prompt_tokens: int, output_tokens: float
) -> float:
    price = dep.price
    if price.input_per_mtok or price.output_per_mtok:
        return price.cost(prompt_tokens, int(output_tokens))
    if dep.hourly_usd:
        # Owned hardware: the hour's cost spread over the tokens it can produce.
        per_token = dep.hourly_usd / 3600 / max(est_tokens_per_s, 1e-9)
        return per_token * output_tokens
    return 0.0


class Router:
    def __init__(
        self,
        deployments: Mapping[str, DeploymentConfig],
        breakers: Mapping[str, Breaker],
        estimates: Estimates,
        sticky: StickyConversations,
        scan: Any = None,  # (body) -> dict[kind, count]; None when no scanner is configured
        balancer: Balancer | None = None,  # for routing: balanced
    ) -> None:
        self.balancer = balancer
        self.deployments = deployments
        self.breakers = breakers
        self.estimates = estimates
        self.sticky = sticky
        self.scan = scan
        self._explore_turns: dict[str, int] = {}

    def features(
        self, model: ModelConfig, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> RequestFeatures:
        conversation = conversation_id(body, headers)
        sensitive: dict[str, int] = {}
        leaves = any(not self.deployments[d].trusted for d in model.deployments)
        if model.privacy != "off" and leaves and self.scan is not None:
            sensitive = self.scan(body)
        sticky = conversation is not None and conversation in self.sticky
        if sensitive and conversation is not None:
            self.sticky.mark(conversation)
        return RequestFeatures(
            prompt_tokens=estimate_prompt_tokens(body),
            max_output_tokens=max_output_tokens(body),
            needs_tools=bool(body.get("tools")),
            needs_structured_output=isinstance(body.get("response_format"), dict)
            and body["response_format"].get("type") in ("json_object", "json_schema"),
            sensitive=sensitive,
            sticky_local=sticky and model.privacy != "off",
            latency_budget_s=latency_budget_s(model, body, headers),
        )

    def candidates(self, model: ModelConfig, req: RequestFeatures) -> list[Candidate]:
        out = []
        for name in model.deployments:
            dep = self.deployments[name]
            est = self.estimates[name]
            latency, parts = est.predict(req.max_output_tokens, req.prompt_tokens)
            cost = predicted_cost(
                dep, est.tokens_per_s(), req.prompt_tokens, parts["output_tokens"]
            )
            out.append(
                Candidate(
                    name=name,
                    trusted=dep.trusted,
                    available=self.breakers[name].available(),
                    latency_s=latency,
                    cost_usd=cost,
                    context_window=dep.context_window,
                    supports_tools=dep.supports_tools,
                    supports_structured_output=dep.supports_structured_output,
                    latency_parts=parts,
                )
            )
        return out

    def plan(self, model: ModelConfig, req: RequestFeatures, ask: Ask | None = None) -> Decision:
        decision = decide(
            self.candidates(model, req),
            req,
            model.objective,
            model.privacy,
            keep_order=model.routing != "policy",
        )
        if model.routing == "policy" and req.latency_budget_s is None:
            return self._explore(decision)
        if model.routing != "balanced" or decision.refusal is not None:
            return decision
        assert self.balancer is not None and ask is not None, "balanced routing without a balancer"
        return balanced(decision, self.balancer.rank(ask, decision.order, model.balance))

    def _explore(self, decision: Decision) -> Decision:
        """Send an occasional request to an allowed deployment the router knows too little about.

        Estimates learn only from traffic a deployment serves: without this, one that starts
        behind on its priors is never tried and so never learned. Requests with a latency budget
        are never used for it; privacy and capability have already been applied.
        """
        for name in decision.order[1:]:
            seen = self.estimates[name].output_tokens.count
            if seen >= EXPLORE_UNTIL:
                continue
            turn = self._explore_turns.get(name, 0) + 1
            self._explore_turns[name] = turn % EXPLORE_EVERY
            if turn < EXPLORE_EVERY:
                continue
            order = (name, *(n for n in decision.order if n != name))
            rule = (
                f"explore: {name} has {seen} of {EXPLORE_UNTIL} observations"
                f" (otherwise {decision.order[0]}: {decision.rule})"
            )
            return replace(decision, order=order, rule=rule)
        return decision


def balanced(allowed: Decision, ranking: Ranking) -> Decision:
    """The allowed deployments in the balancer's order; its scores stand in for latency."""
    order = ranking.order + tuple(n for n in allowed.order if n not in ranking.order)
    verdicts = tuple(
        Verdict(v.name, v.allowed, v.reason, v.redact, ranking.scores[v.name], v.cost_usd)
        if v.name in ranking.scores
        else v
        for v in allowed.verdicts
    )
    return Decision(order, _rule(ranking, order[0]), verdicts, allowed.redact)


def _rule(ranking: Ranking, chosen: str) -> str:
    if ranking.rule == "least_work" and chosen in ranking.scores:
        return f"least_work: adds {ranking.scores[chosen] * 1000:.0f} ms, the least"
    return {
        "round_robin": "round_robin: next in turn",
        "least_requests": "least_requests: fewest in flight",
        "power_of_two": "power_of_two: less loaded of two drawn",
    }.get(ranking.rule, ranking.rule)
