"""Online estimates per deployment: round trip, and service time on prompt and output tokens.

Learned from every finished attempt (and seeded from the record at start-up); the network round
trip is measured apart, so a slower network and a slower model are told apart. Prompt length is
a regressor of its own: a CPU model reads a 2,000-token prompt for seconds before its first
token, and a route that ignored that would send long prompts to it as if they were short.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.config import DeploymentConfig
from turnout.routing.ridge import Ridge3

# Priors until a deployment has been observed: deliberately pessimistic for remote ones.
_PRIOR_TTFT_S = 0.5
_PRIOR_PREFILL_S = 0.0002  # per prompt token
_PRIOR_TPOT_S = 0.03
_PRIOR_RTT_REMOTE_S = 0.05
_PRIOR_OUTPUT_TOKENS = 256.0
# Coefficients are fitted per 1,000 tokens; the ridge holds a slope at its prior until the
# lengths seen (over the ~7 answers the forgetting keeps) differ by more than ~12 prompt tokens
# or ~4 output tokens.
_PRIOR = (_PRIOR_TTFT_S, _PRIOR_PREFILL_S * 1000, _PRIOR_TPOT_S * 1000)
_RIDGE = (1e-3, 1e-3, 1e-4)


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
    """Service time, round trip excluded: seconds = fixed + per prompt token × prompt tokens +
    per output token × output tokens, by exponentially weighted ridge least squares (recent
    answers weigh more, so it follows a deployment that slows down). Streams give two points
    per answer (the first token and the last); whole answers give one.
    """

    lsq: Ridge3 = field(default_factory=lambda: Ridge3(_PRIOR, _RIDGE, 0.85))

    @property
    def count(self) -> int:
        return self.lsq.count

    def add(self, prompt_tokens: float, tokens: float, seconds: float) -> None:
        self.lsq.add((1.0, prompt_tokens / 1000, tokens / 1000), seconds)

    def fit(self) -> tuple[float, float, float]:
        """(fixed seconds, seconds per prompt token, seconds per output token)."""
        fixed, per_k_prompt, per_k_out = self.lsq.coef
        return fixed, per_k_prompt / 1000, per_k_out / 1000


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

    def observe(
        self, *, total_s: float, ttft_s: float | None, completion_tokens: int, prompt_tokens: int
    ) -> None:
        rtt = self.rtt()
        if ttft_s is not None:
            self.service.add(prompt_tokens, 1.0, max(0.0, ttft_s - rtt))
        if completion_tokens > 0:
            self.service.add(prompt_tokens, completion_tokens, max(0.0, total_s - rtt))
            self.output_tokens.update(float(completion_tokens))

    def predict(
        self, max_output_tokens: int | None, prompt_tokens: int = 0
    ) -> tuple[float, dict[str, float]]:
        """Predicted seconds to the whole answer, and its parts."""
        out = self.output_tokens.get(_PRIOR_OUTPUT_TOKENS)
        if max_output_tokens is not None:
            out = min(out, float(max_output_tokens))
        fixed, per_prompt, per_token = self.service.fit()
        fixed += per_prompt * prompt_tokens  # reading the prompt comes before the first token
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
        return (self.concurrency or 1) / max(self.service.fit()[2], 1e-6)


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
            prompt_tokens=attempt.prompt_tokens,
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
                prompt_tokens=int(a.get("prompt_tokens") or 0),
            )
            used += 1
        return used
