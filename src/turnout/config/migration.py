"""The `shadow:` and `canary:` keys of a model: moving a model's traffic to a candidate."""

from __future__ import annotations

from collections.abc import Mapping

from turnout.config.reader import _Reader
from turnout.config.schema import CanaryConfig, CanaryGate, DeploymentConfig, ShadowConfig


def _candidate(r: _Reader, deployments: Mapping[str, DeploymentConfig]) -> str:
    if not r.has("deployment"):
        raise r.error("missing: the candidate deployment", "deployment")
    name: str = r.get("deployment", str, "")
    if name not in deployments:
        known = ", ".join(sorted(deployments)) or "none defined"
        raise r.error(f"unknown deployment {name!r} (known: {known})", "deployment")
    return name


def shadow_config(
    model: _Reader, deployments: Mapping[str, DeploymentConfig]
) -> ShadowConfig | None:
    if not model.has("shadow"):
        model.used.add("shadow")
        return None
    r = model.child("shadow")
    d = ShadowConfig(deployment="")
    fraction = r.number("fraction", d.fraction, minimum=0)
    if fraction > 1:
        raise r.error(f"must be a fraction between 0 and 1, got {fraction}", "fraction")
    cfg = ShadowConfig(
        deployment=_candidate(r, deployments),
        fraction=fraction,
        budget_usd=r.number("budget_usd", d.budget_usd, minimum=0),
        max_in_flight=r.number("max_in_flight", d.max_in_flight, minimum=1, integer=True),
    )
    r.done()
    return cfg


def canary_config(
    model: _Reader, deployments: Mapping[str, DeploymentConfig], old: tuple[str, ...]
) -> CanaryConfig | None:
    if not model.has("canary"):
        model.used.add("canary")
        return None
    r = model.child("canary")
    d = CanaryConfig(deployment="")
    name = _candidate(r, deployments)
    if name in old:
        raise r.error(
            f"{name!r} already serves this model; the candidate must be another deployment",
            "deployment",
        )
    stages = _stages(r, d.stages)
    lo = r.number("min_requests_per_stage", d.min_requests_per_stage, minimum=1, integer=True)
    hi = r.number(
        "max_requests_per_stage", max(d.max_requests_per_stage, lo), minimum=1, integer=True
    )
    if hi < lo:
        raise r.error(
            f"must be ≥ min_requests_per_stage ({lo}), got {hi}", "max_requests_per_stage"
        )
    cfg = CanaryConfig(
        deployment=name,
        stages=stages,
        min_requests_per_stage=lo,
        max_requests_per_stage=hi,
        min_stage_s=r.number("min_stage_s", d.min_stage_s, minimum=0),
        gate=_gate(r.child("gate")),
    )
    r.done()
    return cfg


def _stages(r: _Reader, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = r.get("stages", list, list(default))
    if not raw:
        raise r.error("needs at least one stage (percent of traffic)", "stages")
    out: list[float] = []
    for i, value in enumerate(raw):
        where = f"stages[{i}]"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise r.error("expected a percentage of traffic (a number)", where)
        if not 0 < value <= 100:
            raise r.error(f"must be a percentage above 0 and at most 100, got {value}", where)
        if out and value <= out[-1]:
            raise r.error(f"stages must increase; {value} follows {out[-1]:g}", where)
        out.append(float(value))
    return tuple(out)


def _gate(r: _Reader) -> CanaryGate:
    d = CanaryGate()
    alpha = r.number("alpha", d.alpha, minimum=0)
    if not 0 < alpha < 0.5:
        raise r.error(f"must be between 0 and 0.5, got {alpha}", "alpha")
    success = r.number("success_margin", d.success_margin, minimum=0)
    if success >= 1:
        raise r.error(
            f"an absolute difference in success rate, below 1; got {success}", "success_margin"
        )
    miss = r.number("miss_margin", d.miss_margin, minimum=0)
    if miss >= 1:
        raise r.error(f"an absolute difference in miss rate, below 1; got {miss}", "miss_margin")
    relative = {}
    for key in ("latency_margin", "cost_margin"):
        relative[key] = r.number(key, getattr(d, key), minimum=0)
        if relative[key] <= 0:
            raise r.error("must be > 0: a tolerated relative degradation, e.g. 0.25", key)
    cfg = CanaryGate(alpha=alpha, success_margin=success, miss_margin=miss, **relative)
    r.done()
    return cfg
