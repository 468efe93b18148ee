"""The `fingerprint:` section: which deployments the swap watch checks, how often, at what cost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.config.reader import _Reader
from turnout.config.schema import DeploymentConfig, PassiveSettings, WatchSettings, WatchTarget


def watch_section(
    data: Any, source: str, deployments: Mapping[str, DeploymentConfig] | None = None
) -> WatchSettings:
    """Settings from the mapping under `fingerprint:`; `deployments`: the known ones, if given."""
    return watch_settings(_Reader(source, {} if data is None else data, "fingerprint"), deployments)


def watch_settings(
    r: _Reader, deployments: Mapping[str, DeploymentConfig] | None = None
) -> WatchSettings:
    d = WatchSettings()
    alpha: float = r.number("alpha", d.alpha, minimum=0)
    if not 0 < alpha < 1:
        raise r.error(f"must be between 0 and 1, got {alpha}", "alpha")
    store = r.get("store", str, d.store)
    if store is not None and not store.startswith("sqlite:///"):
        raise r.error(f"expected a URL sqlite:///PATH, got {store!r}", "store")
    cfg = WatchSettings(
        targets=_targets(r.child("deployments"), deployments),
        alpha=alpha,
        consecutive=r.number("consecutive", d.consecutive, minimum=1, integer=True),
        store=store,
        concurrency=r.number("concurrency", d.concurrency, minimum=1, integer=True),
        permutations=r.number("permutations", d.permutations, minimum=99, integer=True),
        passive=_passive(r),
    )
    r.done()
    return cfg


def _targets(
    r: _Reader, deployments: Mapping[str, DeploymentConfig] | None
) -> tuple[WatchTarget, ...]:
    out = []
    for name in r.data:
        if deployments is not None and name not in deployments:
            known = ", ".join(sorted(deployments)) or "none defined"
            raise r.error(f"unknown deployment {name!r} (known: {known})", str(name))
        t = r.child(name)
        d = WatchTarget(deployment=str(name), baseline=str(name))
        out.append(
            WatchTarget(
                deployment=d.deployment,
                baseline=t.get("baseline", str, d.baseline),
                suite=t.get("suite", str, d.suite),
                every_s=t.number("every_s", d.every_s, minimum=1),
                samples=t.number("samples", d.samples, minimum=2, integer=True),
                max_cost_usd=t.number("max_cost_usd", d.max_cost_usd, minimum=0),
                take_out=t.get("take_out", bool, d.take_out),
            )
        )
        t.done()
    r.done()
    return tuple(out)


def _passive(r: _Reader) -> PassiveSettings | None:
    value = r.data.get("passive")
    if value is None or value is False:
        r.used.add("passive")
        return None
    if value is True:
        r.used.add("passive")
        return PassiveSettings()
    p = r.child("passive")
    d = PassiveSettings()
    cfg = PassiveSettings(
        every_s=p.number("every_s", d.every_s, minimum=0.01),
        warmup=p.number("warmup", d.warmup, minimum=10, integer=True),
        batch=p.number("batch", d.batch, minimum=1, integer=True),
        threshold=p.number("threshold", d.threshold, minimum=0.1),
        rate_threshold=p.number("rate_threshold", d.rate_threshold, minimum=0.1),
    )
    p.done()
    return cfg
