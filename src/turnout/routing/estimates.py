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
class DeploymentEstimate:
    remote: bool
    concurrency: int | None  # slots that serve in parallel, where known
    rtt_s: Ewma = field(default_factory=lambda: Ewma(0.5))
    ttft_s: Ewma = field(default_factory=lambda: Ewma(0.2))  # server side, round trip excluded
    tpot_s: Ewma = field(default_factory=lambda: Ewma(0.2))
    output_tokens: Ewma = field(default_factory=lambda: Ewma(0.1))
    in_flight: int = 0

    def rtt(self) -> float:
        return self.rtt_s.get(_PRIOR_RTT_REMOTE_S if self.remote else 0.0)

    def observe(
        self, *, total_s: float, ttft_s: float | None, completion_tokens: int
    ) -> None:
        rtt = self.rtt()
        if ttft_s is not None:
            self.ttft_s.update(max(0.0, ttft_s - rtt))
            if completion_tokens > 1:
                self.tpot_s.update(max(0.0, total_s - ttft_s) / (completion_tokens - 1))
        elif completion_tokens > 0:
            # One piece: what is left after the round trip and the usual first token is decode.
            rest = total_s - rtt - self.ttft_s.get(_PRIOR_TTFT_S)
            self.tpot_s.update(max(0.0, rest) / completion_tokens)
        if completion_tokens > 0:
            self.output_tokens.update(float(completion_tokens))

    def predict(self, max_output_tokens: int | None) -> tuple[float, dict[str, float]]:
        """Predicted seconds to the whole answer, and its parts."""
        out = self.output_tokens.get(_PRIOR_OUTPUT_TOKENS)
        if max_output_tokens is not None:
            out = min(out, float(max_output_tokens))
        ttft = self.ttft_s.get(_PRIOR_TTFT_S)
        tpot = self.tpot_s.get(_PRIOR_TPOT_S)
        service = ttft + out * tpot
        queue = 0.0
        if self.concurrency:
            waiting = self.in_flight - self.concurrency + 1
            if waiting > 0:
                queue = waiting * service / self.concurrency
        rtt = self.rtt()
        parts = {"rtt_s": rtt, "queue_s": queue, "ttft_s": ttft, "decode_s": out * tpot,
                 "output_tokens": out}
        return rtt + queue + ttft + out * tpot, parts

    def tokens_per_s(self) -> float:
        return (self.concurrency or 1) / max(self.tpot_s.get(_PRIOR_TPOT_S), 1e-6)


class Estimates:
    def __init__(self, deployments: Mapping[str, DeploymentConfig]) -> None:
        self.by_name = {
            name: DeploymentEstimate(
                remote=dep.kind != "embedded",
                concurrency=dep.max_concurrency if dep.kind == "embedded" else None,
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
            est.observe(total_s=a["ended"] - a["started"],
                        ttft_s=None if ttft is None else float(ttft),
                        completion_tokens=int(a.get("completion_tokens") or 0))
            used += 1
        return used
