"""From a replay's pairs to findings: rates, aggregates by route and category, the gate."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from turnout.migrate.diff import Calibration, Embed, PairDiff, checks, diff
from turnout.migrate.family import Family, family
from turnout.migrate.gate import Verdict, continuous, paired_pass_rate
from turnout.migrate.replay import Replay

# Shares of the gate's α (weighted Holm): the semantic match sees most kinds of regression.
WEIGHTS = {
    "semantic_distance": 3.0,
    "semantic_match": 2.0,
    "valid": 2.0,
    "tool_calls_match": 2.0,
    "json_match": 2.0,
}
# Distances this small are paraphrase-level: the offset keeps exact matches (distance 0) from
# turning a tiny wobble into a large ratio.
DISTANCE_OFFSET = 0.05
RATES = (
    "exact", "normalised", "semantic_match", "echo", "valid", "format_match", "refusal",
    "truncated",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class GateSettings:
    alpha: float = 0.05  # family-wise: Holm over every check
    margin: float = 0.05  # tolerated drop in a pass rate
    distance_margin: float = 0.20  # tolerated relative growth of the semantic distance
    latency_margin: float = 0.25  # tolerated relative slow-down
    cost_margin: float = 0.10  # tolerated relative cost increase
    length_margin: float = 0.25  # tolerated relative change in answer length, either way

    def as_dict(self) -> dict[str, float]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(slots=True)
class Analysis:
    replay: Replay
    diffs: list[PairDiff]
    calibration: Calibration
    gate: Family
    settings: GateSettings
    skipped: list[str] = field(default_factory=list)  # checks with nothing to compare

    def rates(self, subset: Sequence[PairDiff] | None = None) -> dict[str, dict[str, float]]:
        """Per arm: the share of pairs with each property, and the mean similarity."""
        ds = self.diffs if subset is None else subset
        out: dict[str, dict[str, float]] = {}
        for arm in ("old", "candidate"):
            diffs = [getattr(d, arm) for d in ds]
            row = {
                k: float(np.mean([getattr(a, k) for a in diffs])) if diffs else 0.0 for k in RATES
            }
            row["similarity"] = float(np.mean([a.similarity for a in diffs])) if diffs else 0.0
            row["errors"] = float(np.mean([not a.ok for a in diffs])) if diffs else 0.0
            out[arm] = row
        return out

    def groups(self, key: str) -> list[dict[str, Any]]:
        """Aggregates per route or category, the group losing most checks first."""
        by: dict[str, list[PairDiff]] = defaultdict(list)
        for d in self.diffs:
            by[getattr(d.pair, key)].append(d)
        rows = []
        for name, ds in by.items():
            r = self.rates(ds)
            lost = sum(bool(d.lost) for d in ds)
            rows.append(
                {
                    key: name,
                    "pairs": len(ds),
                    "regressed": lost,
                    "semantic_match": [
                        r["old"]["semantic_match"],
                        r["candidate"]["semantic_match"],
                    ],
                    "similarity": [r["old"]["similarity"], r["candidate"]["similarity"]],
                    "valid": [r["old"]["valid"], r["candidate"]["valid"]],
                }
            )
        return sorted(rows, key=lambda x: (-x["regressed"] / x["pairs"], -x["pairs"]))

    def worst(self, limit: int = 10) -> list[PairDiff]:
        ranked = sorted(self.diffs, key=lambda d: d.severity, reverse=True)
        return [d for d in ranked if d.lost][:limit]

    @property
    def flagged(self) -> bool:
        return self.gate.flagged

    def verdict(self, check: str) -> Verdict | None:
        return next((v for v in self.gate.verdicts if v.check == check), None)

    def metrics(self) -> dict[str, float]:
        """Flat numbers `--fail-on` can name: the candidate's rates, ratios, regressions."""
        out = {k: v for k, v in self.rates()["candidate"].items()}
        for check, name in (
            ("semantic_distance", "distance_ratio"),
            ("latency_s", "latency_ratio"),
            ("cost_usd", "cost_ratio"),
            ("chars", "length_ratio"),
        ):
            v = self.verdict(check)
            if v is not None:
                out[name] = v.estimate
        out["regressions"] = float(sum(bool(d.lost) for d in self.diffs))
        out["pairs"] = float(len(self.diffs))
        return out


def judge(diffs: list[PairDiff], s: GateSettings) -> tuple[Family, list[str]]:
    """The gate over compared pairs: (its family of verdicts, checks with nothing to compare)."""
    verdicts: list[Verdict] = []
    skipped: list[str] = []
    names: list[str] = []
    for d in diffs:
        names += [n for n, _ in checks(d) if n not in names]
    for name in names:
        pairs = [ok for d in diffs for n, ok in checks(d) if n == name]
        old = [o for o, _ in pairs]
        new = [c for _, c in pairs]
        verdicts.append(paired_pass_rate(old, new, check=name, margin=s.margin, alpha=s.alpha))
    # Semantic distance (1 − similarity to the recorded answer) over every pair, errors included:
    # uses the whole similarity, where semantic_match only sees which side of the threshold.
    verdicts.append(
        continuous(
            [d.old.distance for d in diffs], [d.candidate.distance for d in diffs],
            check="semantic_distance", margin=s.distance_margin, alpha=s.alpha, paired=True,
            offset=DISTANCE_OFFSET,
        )
    )  # fmt: skip
    answered = [d for d in diffs if d.old.ok and d.candidate.ok]
    for name, margin, direction, offset in (
        ("latency_s", s.latency_margin, "higher_is_worse", 0.0),
        ("cost_usd", s.cost_margin, "higher_is_worse", 0.0),
        ("chars", s.length_margin, "two_sided", 1.0),
    ):
        old_v = np.array([getattr(d.old, name) or 0.0 for d in answered], dtype=float)
        new_v = np.array([getattr(d.candidate, name) or 0.0 for d in answered], dtype=float)
        if len(old_v) == 0 or (np.all(old_v == 0) and np.all(new_v == 0)):
            skipped.append(name)  # e.g. cost on a free local model
            continue
        if offset == 0 and (np.any(old_v <= 0) or np.any(new_v <= 0)):
            offset = float(np.min(np.r_[old_v, new_v][np.r_[old_v, new_v] > 0])) / 2
        verdicts.append(
            continuous(
                old_v, new_v, check=name, margin=margin, alpha=s.alpha, paired=True,
                direction=direction, offset=offset,  # type: ignore[arg-type]
            )
        )  # fmt: skip
    return family(verdicts, s.alpha, WEIGHTS, total=len(diffs)), skipped


def analyse(
    replay: Replay,
    settings: GateSettings | None = None,
    calibration: Calibration | None = None,
    embed: Embed | None = None,
) -> Analysis:
    settings = settings or GateSettings()
    if not replay.pairs:
        raise ValueError("the replay holds no pairs: nothing to compare")
    diffs, calibration = diff(replay.pairs, calibration, embed)
    gate, skipped = judge(diffs, settings)
    return Analysis(replay, diffs, calibration, gate, settings, skipped)
