"""Output-length prediction: online quantiles of answer length per route and prompt family.

A request's family is what predicts its answer length better than the request itself can:
its system prompt (the application), the `max_tokens` it asks for, and the response format. The
default predictor keeps a decaying log-scale histogram per family at several levels of detail
and answers from the most specific level that has seen enough answers, so a new application
borrows its route's statistics until it has its own.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# Equal-mass points that stand for a forecast's whole distribution (the balancer's view).
POINT_LEVELS: tuple[float, ...] = tuple((2 * i + 1) / 16 for i in range(8))
REPORTED_LEVELS: tuple[float, ...] = (0.5, 0.9, 0.99)
_BUCKETS_PER_DOUBLING = 4
_MAX_TOKENS = 1 << 17
_N_BUCKETS = _BUCKETS_PER_DOUBLING * 17 + 1
_PRIOR_OUTPUT_TOKENS = 256.0


@dataclass(frozen=True, slots=True)
class LengthFeatures:
    """What is known about a request's answer length before it runs."""

    route: str
    system_hash: str | None = None
    max_tokens: int | None = None
    response_format: str = "text"  # text | json | tools

    @property
    def max_tokens_bucket(self) -> str:
        if self.max_tokens is None:
            return "none"
        return f"≤{1 << max(0, math.ceil(math.log2(max(1, self.max_tokens))))}"


def features_from_body(route: str, body: Mapping[str, Any]) -> LengthFeatures:
    """The length features of an OpenAI-shaped chat or completion body."""
    system = None
    for m in body.get("messages") or ():
        if isinstance(m, dict) and m.get("role") in ("system", "developer"):
            content = m.get("content")
            system = content if isinstance(content, str) else repr(content)
            break
    digest = None if system is None else hashlib.blake2b(system.encode(), digest_size=8).hexdigest()
    value = body.get("max_tokens") or body.get("max_completion_tokens")
    fmt = "text"
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema"):
        fmt = "json"
    elif body.get("tools"):
        fmt = "tools"
    return LengthFeatures(route, digest, value if isinstance(value, int) else None, fmt)


@dataclass(frozen=True, slots=True)
class LengthForecast:
    """A predicted answer length as a distribution: quantiles, mean and equal-mass points."""

    mean: float
    points: tuple[float, ...]  # ascending; each stands for an equal share of probability
    cap: int | None = None  # max_tokens: no answer is longer
    source: str = "prior"  # which family level answered

    def quantile(self, q: float) -> float:
        """Interpolated between the points (they sit at the centres of equal-mass slices)."""
        pts = self.points
        pos = q * len(pts) - 0.5
        if pos <= 0:
            return pts[0]
        if pos >= len(pts) - 1:
            return pts[-1]
        i = int(pos)
        return pts[i] + (pts[i + 1] - pts[i]) * (pos - i)

    def quantiles(self, levels: Sequence[float] = REPORTED_LEVELS) -> dict[float, float]:
        return {q: self.quantile(q) for q in levels}

    @classmethod
    def exactly(cls, tokens: float) -> LengthForecast:
        """A length known in advance (the oracle's view, or a client that says so)."""
        return cls(float(tokens), (float(tokens),), None, "exact")


class LengthPredictor(Protocol):
    """The pluggable interface: a forecast before the request runs, the truth after it ends."""

    def predict(self, features: LengthFeatures) -> LengthForecast: ...

    def observe(self, features: LengthFeatures, actual: int) -> None: ...


def _bucket(tokens: float) -> int:
    if tokens < 1:
        return 0
    return min(_N_BUCKETS - 1, int(_BUCKETS_PER_DOUBLING * math.log2(tokens)) + 1)


def _bucket_bounds(i: int) -> tuple[float, float]:
    if i == 0:
        return 0.0, 1.0
    lo = 2 ** ((i - 1) / _BUCKETS_PER_DOUBLING)
    return lo, lo * 2 ** (1 / _BUCKETS_PER_DOUBLING)


_BOUNDS = [_bucket_bounds(i) for i in range(_N_BUCKETS)]
_MIDS = [0.5 if i == 0 else math.sqrt(lo * hi) for i, (lo, hi) in enumerate(_BOUNDS)]


@dataclass(slots=True)
class DecayingHistogram:
    """Counts in log-spaced buckets (~19% wide) where recent answers weigh more.

    Instead of decaying every count on every observation, each new one weighs a little more
    than the last; counts are rescaled only when the weights grow large.
    """

    half_life: float = 500.0  # observations
    counts: list[float] = field(default_factory=lambda: [0.0] * _N_BUCKETS)
    weight: float = 1.0
    total: float = 0.0
    weighted_sum: float = 0.0
    n: int = 0
    points: list[float] | None = None  # POINT_LEVELS quantiles as of `points_at` answers
    points_at: int = 0

    def add(self, tokens: float) -> None:
        self.n += 1
        self.counts[_bucket(tokens)] += self.weight
        self.total += self.weight
        self.weighted_sum += self.weight * tokens
        self.weight *= 2 ** (1 / self.half_life)
        if self.weight > 1e100:
            scale = 1 / self.weight
            self.counts = [c * scale for c in self.counts]
            self.total *= scale
            self.weighted_sum *= scale
            self.weight = 1.0

    @property
    def effective_count(self) -> float:
        """How many recent observations the histogram amounts to."""
        return self.total / self.weight * 2 ** (1 / self.half_life)

    def mean(self) -> float:
        return self.weighted_sum / self.total if self.total else 0.0

    def quantiles(self, levels: Sequence[float]) -> list[float]:
        """Levels ascending; geometric interpolation inside a bucket."""
        out: list[float] = []
        targets = [q * self.total for q in levels]
        n = len(targets)
        k = 0
        cum = 0.0
        for i, c in enumerate(self.counts):
            if c <= 0:
                continue
            nxt = cum + c
            while k < n and nxt >= targets[k]:
                lo, hi = _BOUNDS[i]
                frac = (targets[k] - cum) / c
                out.append(lo + (hi - lo) * frac if i == 0 else lo * (hi / lo) ** frac)
                k += 1
            if k == n:
                break
            cum = nxt
        if len(out) < len(targets):  # rounding left the top levels unmet: the top bucket
            top = max((i for i, c in enumerate(self.counts) if c > 0), default=0)
            out.extend([_MIDS[top]] * (len(targets) - len(out)))
        return out


def _levels(f: LengthFeatures) -> tuple[tuple[str, ...], ...]:
    """Family keys, most specific first; the last is the whole route."""
    fmt, mt = f.response_format, f.max_tokens_bucket
    return (
        ("app", f.route, f.system_hash or "-", mt, fmt),
        ("system", f.route, f.system_hash or "-"),
        ("shape", f.route, mt, fmt),
        ("route", f.route),
    )


@dataclass(slots=True)
class PredictionErrors:
    """How wrong the forecasts were, per route: for export as metrics and for the benchmark."""

    n: int = 0
    abs_error: float = 0.0  # of the mean forecast, tokens
    sq_error: float = 0.0
    abs_log_ratio: float = 0.0  # |ln(predicted / actual)|: factor-of-two errors weigh alike
    within_p90: int = 0  # answers no longer than the p90 forecast (calibration)
    pinball_p90: float = 0.0

    def add(self, forecast: LengthForecast, actual: int) -> None:
        predicted = forecast.mean
        err = predicted - actual
        self.n += 1
        self.abs_error += abs(err)
        self.sq_error += err * err
        self.abs_log_ratio += abs(math.log(max(predicted, 1.0) / max(actual, 1)))
        p90 = forecast.quantile(0.9)
        self.within_p90 += actual <= p90
        self.pinball_p90 += 0.9 * (actual - p90) if actual >= p90 else 0.1 * (p90 - actual)

    def summary(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {
            "n": self.n,
            "mae_tokens": self.abs_error / n,
            "rmse_tokens": math.sqrt(self.sq_error / n),
            "mean_abs_log_ratio": self.abs_log_ratio / n,
            "p90_coverage": self.within_p90 / n,
            "pinball_p90": self.pinball_p90 / n,
        }


def _capped(values: Sequence[float], cap: int | None) -> tuple[float, ...]:
    return tuple(v if cap is None else min(v, float(cap)) for v in values)


class FamilyQuantiles:
    """The default `LengthPredictor`: decaying histograms per family, most specific first."""

    def __init__(
        self,
        *,
        min_samples: float = 20.0,
        half_life: float = 500.0,
        prior_tokens: float = _PRIOR_OUTPUT_TOKENS,
        max_families: int = 50_000,
    ) -> None:
        self.min_samples = min_samples
        self.half_life = half_life
        self.prior_tokens = prior_tokens
        self.max_families = max_families
        self.families: dict[tuple[str, ...], DecayingHistogram] = {}
        self.errors: dict[str, PredictionErrors] = {}

    def predict(self, features: LengthFeatures) -> LengthForecast:
        cap = features.max_tokens
        levels = _levels(features)
        for key in levels:
            h = self.families.get(key)
            if h is not None and h.effective_count >= self.min_samples:
                return self._forecast(h, cap, key[0])
        # Too little anywhere: the route's histogram if it has anything at all, else the prior.
        h = self.families.get(levels[-1])
        if h is not None and h.n > 0:
            return self._forecast(h, cap, "route")
        guess = self.prior_tokens if cap is None else min(self.prior_tokens, float(cap))
        return LengthForecast(guess, (guess,), cap, "prior")

    def _forecast(self, h: DecayingHistogram, cap: int | None, source: str) -> LengthForecast:
        # A histogram moves little per answer: its points are recomputed every few answers.
        if h.points is None or h.n - h.points_at >= min(8, 1 + h.points_at // 16):
            h.points = h.quantiles(POINT_LEVELS)
            h.points_at = h.n
        points = _capped(h.points, cap)
        mean = h.mean() if cap is None else min(h.mean(), float(cap))
        return LengthForecast(mean, points, cap, source)

    def observe(self, features: LengthFeatures, actual: int) -> None:
        self.errors.setdefault(features.route, PredictionErrors()).add(
            self.predict(features), actual
        )
        for key in _levels(features):
            h = self.families.get(key)
            if h is None:
                if len(self.families) >= self.max_families:
                    continue  # bounded memory: unseen families fall back to coarser levels
                h = self.families[key] = DecayingHistogram(self.half_life)
            h.add(float(actual))


class AssumeMaxTokens:
    """Baseline: every answer runs to its limit (what a length-blind scheduler must assume)."""

    def __init__(self, default: int = 4096) -> None:
        self.default = default
        self.errors: dict[str, PredictionErrors] = {}

    def predict(self, features: LengthFeatures) -> LengthForecast:
        v = float(features.max_tokens or self.default)
        return LengthForecast(v, (v,), features.max_tokens, "max_tokens")

    def observe(self, features: LengthFeatures, actual: int) -> None:
        self.errors.setdefault(features.route, PredictionErrors()).add(
            self.predict(features), actual
        )


class GlobalMean:
    """Baseline: every answer is as long as the average answer so far."""

    def __init__(self, prior_tokens: float = _PRIOR_OUTPUT_TOKENS) -> None:
        self.n = 0
        self.total = 0.0
        self.prior_tokens = prior_tokens
        self.errors: dict[str, PredictionErrors] = {}

    def predict(self, features: LengthFeatures) -> LengthForecast:
        v = self.total / self.n if self.n else self.prior_tokens
        return LengthForecast(v, (v,), None, "global_mean")

    def observe(self, features: LengthFeatures, actual: int) -> None:
        self.errors.setdefault(features.route, PredictionErrors()).add(
            self.predict(features), actual
        )
        self.n += 1
        self.total += actual


PREDICTORS = {"family": FamilyQuantiles, "max_tokens": AssumeMaxTokens, "global_mean": GlobalMean}
