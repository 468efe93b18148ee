"""Online estimates per deployment: round trip, time to first token, time per output token.

Learned from every finished attempt (and seeded from the record at start-up); the network round
trip is measured apart, so a slower network and a slower model are told apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.config import DeploymentConfig

# Priors until a deployment has been observed: deliberately pessimistic for remote ones.
_PRIOR_TTFT_S = 0.5
_PRIOR_TPOT_S = 0.03
_PRIOR_RTT_REMOTE_S = 0.05
_PRIOR_OUTPUT_TOKENS = 256.0


@dataclass(slots=True)
class Ewma:
    alpha: float
    value: float | None = None
    count: int = 0

    def update(self, x: float) -> None:
        self.count += 1
        self.value = x if self.value is None else self.value + self.alpha * (x - self.value)

    def get(self, default: float) -> float:
        return default if self.value is None else self.value


@dataclass(slots=True)
class ServiceTime:
    """Online least squares of service time on output tokens: seconds = fixed + per_token × n.

    Exponentially weighted, so it follows a deployment that slows down. Streams give two points
    per answer (the first token and the last); whole answers give one.
    """

    alpha: float = 0.15
    count: int = 0
    mx: float = 0.0
    my: float = 0.0
    mxx: float = 0.0
    mxy: float = 0.0

    def add(self, tokens: float, seconds: float) -> None:
        a = 1.0 if self.count == 0 else self.alpha
        self.count += 1
        self.mx += a * (tokens - self.mx)
        self.my += a * (seconds - self.my)
        self.mxx += a * (tokens * tokens - self.mxx)
        self.mxy += a * (tokens * seconds - self.mxy)

    def fit(self) -> tuple[float, float]:
        """(fixed seconds, seconds per token); priors until there is data to say otherwise."""
        if self.count == 0:
            return _PRIOR_TTFT_S, _PRIOR_TPOT_S
        var = self.mxx - self.mx * self.mx
        if var > 0.25:  # outputs of different lengths: the slope is measurable
            slope = max(0.0, (self.mxy - self.mx * self.my) / var)
        else:  # one length only: keep the prior slope, fit the level
            slope = (
                _PRIOR_TPOT_S if self.my > _PRIOR_TPOT_S * self.mx else self.my / max(self.mx, 1.0)
            )
        return max(0.0, self.my - slope * self.mx), slope


@dataclass(slots=True)
class DeploymentEstimate:
    remote: bool
    concurrency: int | None  # slots that serve in parallel, where known
    rtt_s: Ewma = field(default_factory=lambda: Ewma(0.5))
    service: ServiceTime = field(default_factory=ServiceTime)  # round trip excluded
    output_tokens: Ewma = field(default_factory=lambda: Ewma(0.1))
    in_flight: int = 0  # attempts running on it
    queued: int = 0  # requests waiting at its admission gate, not yet running

    def rtt(self) -> float:
        return self.rtt_s.get(_PRIOR_RTT_REMOTE_S if self.remote else 0.0)

    def observe(self, *, total_s: float, ttft_s: float | None, completion_tokens: int) -> None:
        rtt = self.rtt()
        if ttft_s is not None:
            self.service.add(1.0, max(0.0, ttft_s - rtt))
        if completion_tokens > 0:
            self.service.add(float(completion_tokens), max(0.0, total_s - rtt))
            self.output_tokens.update(float(completion_tokens))

    def predict(self, max_output_tokens: int | None) -> tuple[float, dict[str, float]]:
        """Predicted seconds to the whole answer, and its parts."""
        out = self.output_tokens.get(_PRIOR_OUTPUT_TOKENS)
        if max_output_tokens is not None:
            out = min(out, float(max_output_tokens))
        fixed, per_token = self.service.fit()
        service = fixed + out * per_token
        queue = 0.0
        if self.concurrency:
            waiting = self.in_flight + self.queued - self.concurrency + 1
            if waiting > 0:
                queue = waiting * service / self.concurrency
        rtt = self.rtt()
        parts = {
            "rtt_s": rtt,
            "queue_s": queue,
            "ttft_s": rtt + queue + fixed + per_token,
            "per_token_s": per_token,
            "output_tokens": out,
        }
        return rtt + queue + service, parts

    def tokens_per_s(self) -> float:
        return (self.concurrency or 1) / max(self.service.fit()[1], 1e-6)


class Estimates:
    def __init__(self, deployments: Mapping[str, DeploymentConfig]) -> None:
        self.by_name = {
            name: DeploymentEstimate(
                remote=dep.kind != "embedded",
                # The gateway-side cap, where there is one: beyond it requests queue at the gate.
                concurrency=dep.max_concurrency,
            )
            for name, dep in deployments.items()
        }

    def __getitem__(self, name: str) -> DeploymentEstimate:
        return self.by_name[name]

    def observe_attempt(self, attempt: Any) -> None:
        """Learn from a finished, successful attempt (a `turnout.lifecycle.run.Attempt`)."""
        est = self.by_name.get(attempt.deployment)
        if est is None or not attempt.ok or attempt.ended is None:
            return
        est.observe(
            total_s=attempt.ended - attempt.started,
            ttft_s=attempt.ttft_s,
            completion_tokens=attempt.completion_tokens,
        )

    def seed(self, attempts: Iterable[dict[str, Any]]) -> int:
        """Warm up from recorded attempts (oldest first); returns how many were used."""
        used = 0
        for a in attempts:
            est = self.by_name.get(a.get("deployment", ""))
            if est is None or not a.get("ok") or a.get("ended") is None:
                continue
            ttft = a.get("ttft_s")
            est.observe(
                total_s=a["ended"] - a["started"],
                ttft_s=None if ttft is None else float(ttft),
                completion_tokens=int(a.get("completion_tokens") or 0),
            )
            used += 1
        return used
