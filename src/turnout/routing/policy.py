"""The routing decision: a pure function of candidates, request features and the route's policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    trusted: bool  # may see sensitive data (tagged local or trusted)
    available: bool  # its breaker lets traffic through
    latency_s: float  # predicted, to the whole answer
    cost_usd: float  # predicted
    context_window: int | None = None
    supports_tools: bool = True
    supports_structured_output: bool = True
    latency_parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    prompt_tokens: int
    max_output_tokens: int | None = None
    needs_tools: bool = False
    needs_structured_output: bool = False
    sensitive: dict[str, int] = field(default_factory=dict)  # kind → count
    sticky_local: bool = False  # the conversation carried sensitive data before
    latency_budget_s: float | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    allowed: bool
    reason: str | None = None  # why it was not allowed
    redact: bool = False  # allowed only with placeholders instead of sensitive values
    latency_s: float = 0.0
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "deployment": self.name,
            "latency_ms": round(self.latency_s * 1000, 1),
            "cost_usd": round(self.cost_usd, 8),
        }
        if self.reason:
            out["rejected"] = self.reason
        if self.redact:
            out["redacted"] = True
        return out


@dataclass(frozen=True, slots=True)
class Decision:
    order: tuple[str, ...]  # allowed deployments, preferred first; the rest are fallbacks
    rule: str  # the rule that chose order[0], in words
    verdicts: tuple[Verdict, ...]
    redact: frozenset[str] = frozenset()
    refusal: str | None = None  # "blocked" | "incapable" | "cooling" when nothing may take it

    @property
    def chosen(self) -> str | None:
        return self.order[0] if self.order else None


def _sensitive_words(sensitive: dict[str, int]) -> str:
    return ", ".join(f"{kind}×{n}" for kind, n in sorted(sensitive.items()))


def _judge(c: Candidate, req: RequestFeatures, objective: str, privacy: str) -> Verdict:
    def no(reason: str) -> Verdict:
        return Verdict(c.name, False, reason, latency_s=c.latency_s, cost_usd=c.cost_usd)

    need = req.prompt_tokens + (req.max_output_tokens or 0)
    if c.context_window is not None and need > c.context_window:
        return no(f"incapable: needs ~{need} tokens, context window is {c.context_window}")
    if req.needs_tools and not c.supports_tools:
        return no("incapable: no tool calling")
    if req.needs_structured_output and not c.supports_structured_output:
        return no("incapable: no structured output")
    if objective == "local_only" and not c.trusted:
        return no("objective local_only: not a local deployment")
    if objective == "cloud_only" and c.trusted:
        return no("objective cloud_only: a local deployment")
    redact = False
    if not c.trusted and privacy != "off":
        if req.sticky_local:
            return no("privacy: this conversation carried sensitive data; it stays local")
        if req.sensitive:
            if privacy == "block":
                return no(
                    f"privacy: {_sensitive_words(req.sensitive)} may not leave trusted deployments"
                )
            redact = True
    if not c.available:
        return no("cooling down after repeated failures")
    return Verdict(c.name, True, None, redact, c.latency_s, c.cost_usd)


def decide(
    candidates: Sequence[Candidate],
    req: RequestFeatures,
    objective: str,
    privacy: str,
    *,
    keep_order: bool = False,
) -> Decision:
    """Allowed deployments in preference order, with the reason for every one left out.

    `keep_order` keeps the configured order (ordered and cascade routing) instead of ranking.
    """
    verdicts = tuple(_judge(c, req, objective, privacy) for c in candidates)
    allowed = [v for v in verdicts if v.allowed]
    redact = frozenset(v.name for v in allowed if v.redact)
    if not allowed:
        reasons = [v.reason or "" for v in verdicts]
        if any(r.startswith("privacy") for r in reasons):
            refusal = "blocked"
        elif all(r.startswith("cooling") for r in reasons):
            refusal = "cooling"
        elif any(r.startswith("objective") for r in reasons):
            refusal = "blocked"
        else:
            refusal = "incapable"
        return Decision((), "nothing may take it", verdicts, redact, refusal)
    if keep_order:
        return Decision(tuple(v.name for v in allowed), "configured order", verdicts, redact)
    if objective == "fastest":
        ranked = sorted(allowed, key=lambda v: v.latency_s)
        return Decision(tuple(v.name for v in ranked), "fastest", verdicts, redact)
    budget = req.latency_budget_s
    within = [v for v in allowed if budget is None or v.latency_s <= budget]
    beyond = sorted((v for v in allowed if v not in within), key=lambda v: v.latency_s)
    within.sort(key=lambda v: (v.cost_usd, v.latency_s))
    if within:
        slo = "" if budget is None else f" within {budget * 1000:.0f} ms"
        rule = f"{objective}: cheapest of {len(within)}{slo}"
    else:
        rule = f"{objective}: none within {budget * 1000:.0f} ms, fastest"  # type: ignore[operator]
    return Decision(tuple(v.name for v in within + beyond), rule, verdicts, redact)
