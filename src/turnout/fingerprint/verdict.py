"""The combined verdict: several tests, one answer, a known false-alarm rate.

Holm's weighted step-down procedure over the tests that vote keeps the chance of any false
rejection at most α whatever the dependence between the tests. The weights spend more of α where
power is needed most: the MMD test is the one that sees most kinds of change. Tests that cannot
tell anything from the pooled data (say, no refusals on either side) are left out of the family
first: that choice does not depend on which run a sample came from, so the guarantee holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from turnout.fingerprint.evidence import Evidence


@dataclass(slots=True)
class Verdict:
    changed: bool
    alpha: float
    evidence: list[Evidence]
    baseline_run: str = ""
    fresh_run: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def min_p(self) -> float:
        """The smallest Holm-adjusted p-value among the voting tests (1.0 if none voted)."""
        adjusted = [e.p_adjusted for e in self.evidence if e.p_adjusted is not None]
        return min(adjusted, default=1.0)

    @property
    def reasons(self) -> list[str]:
        return [e.name for e in self.evidence if e.rejected]

    def summary(self) -> str:
        if self.changed:
            parts = [
                f"{e.name} (p={e.p_value:.3g}, {e.detail})" for e in self.evidence if e.rejected
            ]
            return f"CHANGED at α={self.alpha:g}: " + "; ".join(parts)
        return f"no change detected at α={self.alpha:g} (smallest adjusted p {self.min_p:.3g})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "alpha": self.alpha,
            "min_p": self.min_p,
            "reasons": self.reasons,
            "summary": self.summary(),
            "baseline_run": self.baseline_run,
            "fresh_run": self.fresh_run,
            "notes": self.notes,
            "evidence": [e.as_dict() for e in self.evidence],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(
            changed=data["changed"],
            alpha=data["alpha"],
            evidence=[Evidence.from_dict(e) for e in data["evidence"]],
            baseline_run=data.get("baseline_run", ""),
            fresh_run=data.get("fresh_run", ""),
            notes=list(data.get("notes", [])),
        )


# Shares of α, renormalised over the tests that can tell something in a comparison.
WEIGHTS = {
    "mmd": 3.0,
    "typicality": 2.0,
    "agreement": 2.0,
    "length": 1.0,
    "unanswered": 1.0,
    "metadata": 1.0,
    "logprob": 2.0,
    "token_logprob": 2.0,
    "latency": 1.0,
}


def holm(
    evidence: list[Evidence], alpha: float, weights: dict[str, float] | None = None
) -> Verdict:
    """Weighted Holm: order the voting tests by p/w; the next is rejected while
    p ≤ α·w / (the weights of the tests not yet rejected). Equal weights give Holm's own."""
    weights = WEIGHTS if weights is None else weights
    family = [e for e in evidence if e.votes and e.applicable]
    w = {e.name: weights.get(e.name, 1.0) for e in family}
    family.sort(key=lambda e: e.p_value / w[e.name])
    remaining = sum(w.values())
    running = 0.0
    still_rejecting = True
    for e in family:
        running = max(running, min(1.0, e.p_value * remaining / w[e.name]))
        e.p_adjusted = running
        still_rejecting = still_rejecting and e.p_value <= alpha * w[e.name] / remaining
        e.rejected = still_rejecting
        remaining -= w[e.name]
    return Verdict(changed=any(e.rejected for e in family), alpha=alpha, evidence=evidence)
