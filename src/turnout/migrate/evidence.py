"""What a canary stage has shown: observations of both arms, and the gate's verdict on them.

Pure functions, shared by the live canary and `turnout migrate status` (which rebuilds a stage's
evidence from the record).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from turnout.config.schema import CanaryGate
from turnout.lifecycle.run import Run
from turnout.migrate.family import Family, family
from turnout.migrate.gate import continuous
from turnout.migrate.unpaired import unpaired_pass_rate

# Outcomes that say nothing about a model: bad input, a policy refusal, a client that left.
IGNORED = frozenset({"rejected", "blocked", "cancelled"})
ANSWERED = frozenset({"completed", "truncated"})


@dataclass(frozen=True, slots=True)
class Observation:
    arm: str  # candidate | old
    ok: bool  # answered, by the arm's own deployment(s)
    latency_s: float
    cost_usd: float
    request_id: str | None = None  # so a later intent signal can find the answer it is about


def observe(
    arm: str, outcome: str, last_deployment: str | None, candidate: str, latency_s: float | None,
    cost_usd: float,
) -> Observation | None:  # fmt: skip
    """None when the request says nothing about either model."""
    if outcome in IGNORED or latency_s is None or latency_s <= 0:
        return None
    ok = outcome in ANSWERED
    if arm == "candidate":
        ok = (
            ok and last_deployment == candidate
        )  # a fallback to the old model is the candidate's failure
    return Observation(arm, ok, latency_s, cost_usd)


def observe_run(run: Run, candidate: str) -> Observation | None:
    placed = run.migration.get("canary")
    if not placed or run.outcome is None:
        return None
    last = run.attempts[-1].deployment if run.attempts else None
    obs = observe(placed["arm"], run.outcome.value, last, candidate, run.latency_s, run.cost_usd)
    return None if obs is None else dataclasses.replace(obs, request_id=run.id)


def observe_record(row: Mapping[str, Any], candidate: str) -> Observation | None:
    placed = (row.get("migration") or {}).get("canary")
    if not placed:
        return None
    attempts = row.get("attempt_log") or []
    last = attempts[-1]["deployment"] if attempts else None
    latency = None if row.get("latency_ms") is None else row["latency_ms"] / 1000
    obs = observe(placed["arm"], row["outcome"], last, candidate, latency, row["cost_usd"])
    return None if obs is None else dataclasses.replace(obs, request_id=row.get("id"))


def look_alpha(gate: CanaryGate, stages: int) -> float:
    """The level of each look. The canary asks the gate again and again, in every stage; spread
    over the stages, `gate.alpha` bounds how often an equal candidate is rolled back in all
    (measured: bench/results/migrate_canary_null.md)."""
    return gate.alpha / max(1, stages)


def judge(
    old: Sequence[Observation],
    cand: Sequence[Observation],
    gate: CanaryGate,
    alpha: float,
    missed: Collection[str] | None = None,
) -> Family:
    """Success rate, latency and (when both arms cost something) cost per request, under Holm at
    level `alpha`. With `missed` (ids of answers a later rephrase, correction or regenerate was
    attributed to), also the share of answers that did not miss, with `gate.miss_margin`."""
    a = alpha
    verdicts = [
        unpaired_pass_rate(
            [o.ok for o in old], [o.ok for o in cand], check="success", margin=gate.success_margin,
            alpha=a,
        ),
        continuous(
            [o.latency_s for o in old], [o.latency_s for o in cand], check="latency_s",
            margin=gate.latency_margin, alpha=a, paired=False,
        ),
    ]  # fmt: skip
    if missed is not None:
        verdicts.append(
            unpaired_pass_rate(
                [o.request_id not in missed for o in old if o.ok],
                [o.request_id not in missed for o in cand if o.ok],
                check="intent_hit", margin=gate.miss_margin, alpha=a,
            )
        )  # fmt: skip
    costs_o, costs_c = [o.cost_usd for o in old], [o.cost_usd for o in cand]
    if old and cand and min(costs_o) > 0 and min(costs_c) > 0:
        verdicts.append(
            continuous(
                costs_o, costs_c, check="cost_usd", margin=gate.cost_margin, alpha=a, paired=False
            )
        )
    return family(verdicts, a)


def counts(obs: Sequence[Observation], missed: Collection[str] | None = None) -> dict[str, Any]:
    n = len(obs)
    lat = sorted(o.latency_s for o in obs)
    out = {
        "n": n,
        "ok": sum(o.ok for o in obs),
        "success_rate": None if not n else round(sum(o.ok for o in obs) / n, 4),
        "latency_p50_ms": None if not n else round(lat[n // 2] * 1000, 2),
        "cost_usd": round(sum(o.cost_usd for o in obs), 9),
    }
    if missed is not None:
        answered = [o for o in obs if o.ok]
        misses = sum(o.request_id in missed for o in answered)
        out["miss_rate"] = None if not answered else round(misses / len(answered), 4)
    return out
