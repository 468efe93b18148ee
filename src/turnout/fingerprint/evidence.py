"""One test's finding: how surprising the fresh run is under "nothing changed", and by how much."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True)
class Evidence:
    name: str  # mmd | typicality | length | unanswered | metadata | logprob | …
    p_value: float
    effect: float  # on the scale that `effect_label` names
    effect_label: str
    detail: str = ""
    applicable: bool = True  # False: the pooled data cannot tell anything (p is 1 by construction)
    votes: bool = True  # False: reported, but not part of the verdict
    n_baseline: int = 0
    n_fresh: int = 0
    p_adjusted: float | None = None  # Holm-adjusted, for the tests that vote
    rejected: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        return cls(**data)


def not_applicable(name: str, why: str, *, votes: bool = True) -> Evidence:
    return Evidence(name, 1.0, 0.0, "", why, applicable=False, votes=votes)
