"""Several checks, one answer: the migration gate's family verdict.

FAIL: Holm's procedure over the checks' FAIL p-values (the one in turnout.fingerprint, weighted),
so the chance that a null migration is flagged at all stays at most α.

PASS: every check shown non-inferior at α. That is an intersection–union test: a PASS that is wrong
about any one check happens with probability at most α, with no correction needed.

Some checks cannot pass whatever the candidate does: a check needs `min_pairs` pairs before even
full agreement (no pair lost, none gained) shows non-inferiority within its margin — 52 for a
pass-rate check at margin 0.05 and α 0.05. The rule for such a check:
- it applies to only part of the replay (json_match on the JSON requests, tool_calls_match on the
  tool requests) and its estimate is within the margin: reported as "too few pairs to decide" and
  released — it does not hold the family at INCONCLUSIVE, and a PASS makes no claim about it;
- it applies to every pair, or its estimate is worse than the margin: it holds the family, so a
  replay smaller than `min_pairs` can FAIL but not PASS.
A released check still takes part in Holm's FAIL test, so the FAIL guarantee is unchanged, and the
PASS guarantee holds for every check the PASS names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from turnout.fingerprint.evidence import Evidence
from turnout.fingerprint.verdict import holm
from turnout.migrate.gate import Outcome, Verdict, tango_z

_N = NormalDist()
_TINY = 1e-15  # p-values are clipped here before turning them into z scores


def is_paired_rate(v: Verdict) -> bool:
    return v.margin_kind == "pass-rate difference" and "losses" in v.detail


def rate_min_pairs(margin: float, alpha: float) -> int | None:
    """Pairs in full agreement (none lost, none gained) that show a pass rate non-inferior within
    `margin` at `alpha`; None for margin 0, where only more wins than losses can pass."""
    if margin <= 0:
        return None
    z = _N.inv_cdf(1 - alpha)
    n = max(1, math.floor(z * z * (1 - margin) / margin) - 1)
    while _N.cdf(tango_z(0, 0, n, margin)) > alpha:
        n += 1
    return n


def min_pairs(v: Verdict) -> int | None:
    """The fewest pairs with which this check could pass: that many pairs in full agreement would
    show non-inferiority. None when agreement never does (margin 0) or the arms are unpaired."""
    if is_paired_rate(v):
        return rate_min_pairs(v.margin, v.alpha)
    if v.margin_kind == "relative" and v.detail.get("paired"):
        # the exact signed-rank test: n differences all one way have p = 2^-n
        return math.ceil(math.log2(1 / v.alpha))
    return None


def within_margin(v: Verdict) -> bool:
    """The point estimate is no worse than the margin tolerates."""
    if v.margin_kind == "pass-rate difference":
        return v.estimate >= -v.margin
    direction = v.detail.get("direction", "higher_is_worse")
    upper_ok = v.estimate <= 1 + v.margin
    lower_ok = v.estimate >= 1 - v.margin
    return {"higher_is_worse": upper_ok, "lower_is_worse": lower_ok}.get(
        direction, upper_ok and lower_ok
    )


def pairs_needed(v: Verdict, side: str, level: float) -> int | None:
    """Pairs this check needs to reach `side` ("pass" or "fail") at `level` if the rates stay as
    observed: the test's z score grows as √n at fixed rates. None: the rates point the other way."""
    if v.n == 0:
        return None
    p = v.p_pass if side == "pass" else v.p_fail
    if p >= 0.5:
        return None
    z = _N.inv_cdf(1 - max(p, _TINY))
    need = math.ceil(v.n * (_N.inv_cdf(1 - level) / z) ** 2)
    if side == "pass" and (least := min_pairs(v)) is not None:
        need = max(need, least)
    return max(1, need)


@dataclass(slots=True)
class Family:
    """Several verdicts under one family-wise α; see the module docstring for the rule."""

    verdicts: list[Verdict]
    alpha: float
    flagged: bool
    failed: list[str]
    total: int | None = None  # pairs in the replay; None: unpaired arms (nothing is released)
    released: list[str] = field(default_factory=list)  # too few pairs to decide, not counted
    weights: dict[str, float] = field(default_factory=dict)

    @property
    def required(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.check not in self.released]

    @property
    def outcome(self) -> Outcome:
        if self.flagged:
            return Outcome.FAIL
        required = self.required
        if required and all(v.outcome is Outcome.PASS for v in required):
            return Outcome.PASS
        return Outcome.INCONCLUSIVE

    def short(self) -> list[tuple[str, int, int | None]]:
        """Checks holding the family that cannot pass with their pairs: (check, n, needed)."""
        out = []
        for v in self.required:
            least = min_pairs(v)
            if v.outcome is not Outcome.PASS and (
                (least is not None and v.n < least) or (least is None and is_paired_rate(v))
            ):
                out.append((v.check, v.n, least))
        return out

    def needs(self) -> dict[str, Any]:
        """Pairs (of the whole replay) a decision needs at the observed rates: PASS once every
        required check would pass at α; FAIL once the likeliest check would fail at its first Holm
        share of α. Each check's need is scaled by the share of the replay it applies to."""
        total = self.total or max((v.n for v in self.verdicts), default=0)
        weight = sum(self.weights.get(v.check, 1.0) for v in self.verdicts) or 1.0
        by_check: dict[str, dict[str, int | None]] = {}
        for v in self.verdicts:
            share = v.n / total if total and v.n else 1.0
            level = self.alpha * self.weights.get(v.check, 1.0) / weight
            need_pass, need_fail = pairs_needed(v, "pass", v.alpha), pairs_needed(v, "fail", level)
            by_check[v.check] = {
                "pass": None if need_pass is None else math.ceil(need_pass / share),
                "fail": None if need_fail is None else math.ceil(need_fail / share),
            }
        passes = [by_check[v.check]["pass"] for v in self.required]
        fails = [x["fail"] for x in by_check.values() if x["fail"] is not None]
        return {
            "pass": None if not passes or None in passes else max(p for p in passes if p),
            "fail": min(fails) if fails else None,
            "by_check": by_check,
        }

    def summary(self) -> str:
        if self.flagged:
            return f"FAIL at family-wise α={self.alpha:g}: " + ", ".join(self.failed)
        required = self.required
        passed = sum(v.outcome is Outcome.PASS for v in required)
        text = (
            f"{self.outcome.value.upper()}: {passed} of {len(required)} checks shown "
            f"non-inferior, none failed at family-wise α={self.alpha:g}"
        )
        if self.released:
            few = ", ".join(
                f"{v.check} ({v.n} of {min_pairs(v)})"
                for v in self.verdicts
                if v.check in self.released
            )
            text += f"; too few pairs to decide, not counted: {few}"
        if self.outcome is Outcome.INCONCLUSIVE:
            if short := self.short():
                groups: dict[tuple[int, int | None], list[str]] = {}
                for check, n, least in short:
                    groups.setdefault((n, least), []).append(check)
                text += "; cannot pass yet: " + "; ".join(
                    f"{', '.join(cs)} {'has' if len(cs) == 1 else 'have'} {n} pairs, "
                    + (f"{'needs' if len(cs) == 1 else 'need'} {least}" if least else
                       "margin 0: only more wins than losses can pass")
                    for (n, least), cs in groups.items()
                )  # fmt: skip
            need = self.needs()
            if need["pass"]:
                text += f"; at the observed rates a PASS needs about {need['pass']} pairs"
            elif need["fail"]:
                text += f"; at the observed rates a FAIL needs about {need['fail']} pairs"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "alpha": self.alpha,
            "flagged": self.flagged,
            "failed": self.failed,
            "released": self.released,
            "pairs": self.total,
            "needs": self.needs(),
            "summary": self.summary(),
            "verdicts": [v.as_dict() for v in self.verdicts],
        }


def _informative(v: Verdict) -> bool:
    """Left out of Holm's family: no data, or no discordant pair (the same for either labelling
    of the arms, so leaving them out keeps Holm's guarantee)."""
    if v.n == 0:
        return False
    if is_paired_rate(v):
        return bool(v.detail.get("losses", 0) + v.detail.get("wins", 0))
    return True


def family(
    verdicts: list[Verdict],
    alpha: float = 0.05,
    weights: dict[str, float] | None = None,
    total: int | None = None,
) -> Family:
    """Holm over the checks' FAIL p-values: a check fails the family only if Holm rejects it.
    `weights` (by check name, default 1) spend more of α where it matters most, fixed in advance.
    `total`, the pairs in a paired replay, lets checks on part of it be released (module doc).

    The individual verdicts keep their own outcome; `detail` gains `p_fail_holm`, `min_pairs`
    and, for a released check, `too_few`."""
    weights = weights or {}
    evidence = [
        Evidence(v.check, v.p_fail, v.estimate, v.margin_kind, applicable=_informative(v))
        for v in verdicts
    ]
    holm(evidence, alpha, weights=weights)
    released = []
    for v, e in zip(verdicts, evidence, strict=True):
        v.detail["p_fail_holm"] = e.p_adjusted if e.p_adjusted is not None else 1.0
        least = min_pairs(v)
        v.detail["min_pairs"] = least
        if (
            total is not None
            and least is not None
            and v.n < least
            and v.n < total
            and not e.rejected
            and v.outcome is not Outcome.PASS
            and within_margin(v)
        ):
            v.detail["too_few"] = True
            released.append(v.check)
    failed = [e.name for e in evidence if e.rejected]
    return Family(verdicts, alpha, bool(failed), failed, total, released, dict(weights))
