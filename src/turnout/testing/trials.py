"""Run a live scenario repeatedly and reach a verdict: fixed n with a Wilson interval, or
sequentially (SPRT) until the evidence suffices. The pytest marker `trials` is built on this."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from turnout.testing.stats import (
    SPRT,
    Change,
    Comparison,
    Verdict,
    compare,
    pass_hat_k,
    threshold_verdict,
    wilson_interval,
)

_KEPT_FAILURES = 5


@dataclass
class TrialsSpec:
    """How to judge a scenario. Fixed: `n` trials against `threshold`. Sequential: `sprt` set,
    `n` is the most trials it may take."""

    n: int = 20
    threshold: float | None = None
    confidence: float = 0.95
    sprt: SPRT | None = None
    pass_k: tuple[int, ...] = (1,)
    margin: float = 0.0  # baseline comparison: a drop smaller than this is not a regression

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"trials needs n ≥ 1, got {self.n}")
        if self.sprt is None and self.threshold is None:
            raise ValueError("trials needs a threshold (fixed n) or sprt=(p0, p1) (sequential)")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold is a pass rate in [0, 1], got {self.threshold}")

    @classmethod
    def from_marker(cls, kwargs: Mapping[str, Any]) -> TrialsSpec:
        """`trials(n=, threshold=, confidence=)` or `trials(sprt=(p0, p1), alpha=, beta=, n=)`."""
        opts = dict(kwargs)
        sprt = opts.pop("sprt", None)
        alpha, beta = opts.pop("alpha", 0.05), opts.pop("beta", 0.05)
        if sprt is not None and not isinstance(sprt, SPRT):
            p0, p1 = sprt
            sprt = SPRT(p0, p1, alpha, beta)
        pass_k = opts.pop("pass_k", (1,))
        pass_k = (pass_k,) if isinstance(pass_k, int) else tuple(pass_k)
        unknown = set(opts) - {"n", "threshold", "confidence", "margin"}
        if unknown:
            raise TypeError(f"trials() got unknown options: {', '.join(sorted(unknown))}")
        return cls(sprt=sprt, pass_k=pass_k, **opts)


@dataclass
class TrialsResult:
    name: str
    spec: TrialsSpec
    outcomes: list[bool] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    verdict: Verdict = Verdict.INCONCLUSIVE
    baseline: Comparison | None = None

    @property
    def n(self) -> int:
        return len(self.outcomes)

    @property
    def passes(self) -> int:
        return sum(self.outcomes)

    @property
    def rate(self) -> float:
        return self.passes / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.passes, self.n, self.spec.confidence)

    @property
    def regressed(self) -> bool:
        return self.baseline is not None and self.baseline.change is Change.REGRESSION

    def pass_k(self) -> dict[int, float]:
        return {
            k: pass_hat_k({self.name: self.outcomes}, k) for k in self.spec.pass_k if k <= self.n
        }

    def summary(self) -> str:
        lo, hi = self.interval
        conf = round(self.spec.confidence * 100)
        text = (
            f"{self.verdict.value}: {self.passes}/{self.n} passed (rate {self.rate:.2f}, "
            f"{conf}% Wilson interval [{lo:.2f}, {hi:.2f}])"
        )
        if self.spec.sprt is not None:
            s = self.spec.sprt
            text += f"; SPRT p0={s.p0} vs p1={s.p1}, α={s.alpha}, β={s.beta}"
        elif self.spec.threshold is not None:
            text += f"; threshold {self.spec.threshold}"
        if self.baseline is not None:
            b = self.baseline
            text += (
                f"; vs baseline {b.baseline[0]}/{b.baseline[1]}: {b.difference:+.2f} "
                f"[{b.interval[0]:+.2f}, {b.interval[1]:+.2f}] {b.change.value}"
            )
        return text

    def as_json(self) -> dict[str, Any]:
        lo, hi = self.interval
        return {
            "name": self.name,
            "n": self.n,
            "passes": self.passes,
            "pass_rate": self.rate,
            "interval": [lo, hi],
            "confidence": self.spec.confidence,
            "mode": "sprt" if self.spec.sprt else "fixed",
            "threshold": self.spec.threshold,
            "sprt": self.spec.sprt.as_json() if self.spec.sprt else None,
            "verdict": self.verdict.value,
            "pass_k": {str(k): v for k, v in self.pass_k().items()},
            "outcomes": self.outcomes,
            "baseline": self.baseline.as_json() if self.baseline else None,
            "failures": self.failures,
        }


def _describe(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return "".join(lines).strip()[:500]


def run_trials(
    trial: Callable[[int], Any],
    spec: TrialsSpec,
    *,
    name: str = "trials",
    baseline: tuple[int, int] | None = None,
    before_each: Callable[[int], None] | None = None,
) -> TrialsResult:
    """Call `trial(i)` until the spec's verdict; a trial fails by raising or returning False.

    Nothing is cached between trials: each call must reach the live behaviour under test.
    """
    result = TrialsResult(name, spec)
    for i in range(spec.n):
        if before_each is not None:
            before_each(i)
        try:
            ok = trial(i) is not False
            if not ok:
                result.failures.append(f"trial {i + 1}: returned False")
        except Exception as exc:  # a failed trial is data, not the end of the test
            ok = False
            if len(result.failures) < _KEPT_FAILURES:
                result.failures.append(f"trial {i + 1}: {_describe(exc)}")
        result.outcomes.append(ok)
        if spec.sprt is not None:
            decided = spec.sprt.decide(result.passes, result.n)
            if decided is not None:
                result.verdict = decided
                break
    if spec.sprt is None:
        assert spec.threshold is not None
        result.verdict = threshold_verdict(result.passes, result.n, spec.threshold, spec.confidence)
    if baseline is not None:
        result.baseline = compare((result.passes, result.n), baseline, spec.confidence, spec.margin)
    return result


def group_pass_k(results: Sequence[TrialsResult], ks: Sequence[int]) -> dict[int, float]:
    """pass^k across tasks (e.g. the parametrized cases of one test), τ-bench style."""
    tasks = {r.name: r.outcomes for r in results}
    smallest = min(len(t) for t in tasks.values())
    return {k: pass_hat_k(tasks, k) for k in ks if k <= smallest}
