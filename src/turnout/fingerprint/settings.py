"""What to watch: per deployment, which baseline, how often, within which budget.

Read from a YAML mapping (a `fingerprint:` section, or a file of its own):

    fingerprint:
      store: null                 # sqlite:///PATH; default: the record's store
      alpha: 0.05                 # per check, for the combined verdict
      consecutive: 2              # rejections in a row that raise an alarm
      deployments:
        edge:
          baseline: edge          # a stored baseline's name (default: the deployment's name)
          suite: null             # default: the baseline's own suite (as stored with it)
          every_s: 3600
          samples: 50             # completions per check
          max_cost_usd: 0.01      # per check
          take_out: false         # on alarm, take the deployment out of rotation
      passive: {every_s: 60}      # CUSUM over the record; omit to turn off
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from turnout.config import ConfigError


@dataclass(frozen=True, slots=True)
class WatchTarget:
    deployment: str
    baseline: str
    suite: str | None = None  # None: the suite the baseline was collected with
    every_s: float = 3600.0
    samples: int = 50
    max_cost_usd: float | None = None
    take_out: bool = False


@dataclass(frozen=True, slots=True)
class PassiveSettings:
    every_s: float = 60.0
    warmup: int = 1000  # observations per route and signal before a reference is fixed
    batch: int = 20  # observations averaged per CUSUM step for output length
    threshold: float = 12.0  # CUSUM decision interval h, in standard deviations (lengths)
    rate_threshold: float = 12.0  # h for the Bernoulli CUSUMs, in log-likelihood ratio


@dataclass(frozen=True, slots=True)
class WatchSettings:
    targets: tuple[WatchTarget, ...] = ()
    alpha: float = 0.05
    consecutive: int = 2
    store: str | None = None
    concurrency: int = 2
    permutations: int = 1000
    passive: PassiveSettings | None = None
    source: str = "<watch>"

    @property
    def enabled(self) -> bool:
        return bool(self.targets) or self.passive is not None


_TOP = {"store", "alpha", "consecutive", "concurrency", "permutations", "deployments", "passive"}
_TARGET = {"baseline", "suite", "every_s", "samples", "max_cost_usd", "take_out"}
_PASSIVE = {"every_s", "warmup", "batch", "threshold", "rate_threshold"}


def _check_keys(data: dict[str, Any], allowed: set[str], where: str, source: str) -> None:
    unknown = sorted(str(k) for k in set(data) - allowed)
    if unknown:
        raise ConfigError(source, f"{where}{unknown[0]}", "unknown key")


def _num(
    data: dict[str, Any],
    key: str,
    default: Any,
    where: str,
    source: str,
    *,
    minimum: float,
    integer: bool = False,
) -> Any:
    value = data.get(key, default)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise ConfigError(source, f"{where}{key}", f"expected {kind}, got {value!r}")
    if value < minimum:
        raise ConfigError(source, f"{where}{key}", f"must be ≥ {minimum}, got {value}")
    return value if integer else float(value)


def parse_watch(data: Any, source: str = "<watch>") -> WatchSettings:
    """Settings from the mapping under `fingerprint:` (or a whole file that holds it)."""
    if data is None:
        return WatchSettings(source=source)
    if isinstance(data, dict) and set(data) == {"fingerprint"}:
        data = data["fingerprint"] or {}
    if not isinstance(data, dict):
        raise ConfigError(source, "fingerprint", "expected a mapping")
    w = "fingerprint."
    _check_keys(data, _TOP, w, source)
    d = WatchSettings()
    alpha = _num(data, "alpha", d.alpha, w, source, minimum=0.0)
    if not 0 < alpha < 1:
        raise ConfigError(source, f"{w}alpha", f"must be between 0 and 1, got {alpha}")
    targets = []
    deployments = data.get("deployments") or {}
    if not isinstance(deployments, dict):
        raise ConfigError(source, f"{w}deployments", "expected a mapping of deployment names")
    for name, raw in deployments.items():
        where = f"{w}deployments.{name}."
        raw = raw or {}
        if not isinstance(raw, dict):
            raise ConfigError(source, where[:-1], "expected a mapping")
        _check_keys(raw, _TARGET, where, source)
        baseline = raw.get("baseline", str(name))
        suite = raw.get("suite")
        for key, value in (("baseline", baseline), ("suite", suite)):
            if key == "suite" and value is None:
                continue
            if not isinstance(value, str):
                raise ConfigError(source, f"{where}{key}", "expected a string")
        take_out = raw.get("take_out", False)
        if not isinstance(take_out, bool):
            raise ConfigError(source, f"{where}take_out", "expected true or false")
        targets.append(
            WatchTarget(
                deployment=str(name),
                baseline=baseline,
                suite=suite,
                every_s=_num(raw, "every_s", 3600.0, where, source, minimum=1.0),
                samples=_num(raw, "samples", 50, where, source, minimum=2, integer=True),
                max_cost_usd=_num(raw, "max_cost_usd", None, where, source, minimum=0.0),
                take_out=take_out,
            )
        )
    passive = None
    if data.get("passive") is not None:
        raw = data["passive"]
        if raw is True:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(source, f"{w}passive", "expected a mapping (or true)")
        wp = f"{w}passive."
        _check_keys(raw, _PASSIVE, wp, source)
        dp = PassiveSettings()
        passive = PassiveSettings(
            every_s=_num(raw, "every_s", dp.every_s, wp, source, minimum=0.01),
            warmup=_num(raw, "warmup", dp.warmup, wp, source, minimum=10, integer=True),
            batch=_num(raw, "batch", dp.batch, wp, source, minimum=1, integer=True),
            threshold=_num(raw, "threshold", dp.threshold, wp, source, minimum=0.1),
            rate_threshold=_num(raw, "rate_threshold", dp.rate_threshold, wp, source, minimum=0.1),
        )
    store = data.get("store")
    if store is not None and (not isinstance(store, str) or not store.startswith("sqlite:///")):
        raise ConfigError(source, f"{w}store", "expected a URL sqlite:///PATH")
    return WatchSettings(
        targets=tuple(targets),
        alpha=alpha,
        consecutive=_num(data, "consecutive", d.consecutive, w, source, minimum=1, integer=True),
        store=store,
        concurrency=_num(data, "concurrency", d.concurrency, w, source, minimum=1, integer=True),
        permutations=_num(
            data, "permutations", d.permutations, w, source, minimum=99, integer=True
        ),
        passive=passive,
        source=source,
    )


def load_watch(path: str | Path) -> WatchSettings:
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"invalid YAML: {exc}") from None
    return parse_watch(data, source)
