"""What an instance's speed is, learned online: prefill rate and a decode step that grows with the
batch and its context (a + b·batch + c·KV tokens, by exponentially weighted ridge least squares).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from turnout.routing.ridge import Ridge3

# Priors until an instance has been observed: a mid-size model on one GPU.
_PRIOR_PREFILL_TPS = 8000.0
_PRIOR_STEP = (0.012, 0.0002, 0.00005)  # seconds: fixed, per request, per 1000 tokens of KV
_RIDGE = (5.0, 5.0 * 16**2, 5.0 * 16**2)  # pull toward the prior, in each coefficient's scale
_PRIOR_OUTPUT_TOKENS = 256.0


@dataclass(slots=True)
class ServiceRates:
    """An instance's measured speed: prefill tokens/s, and decode step time as a function of
    the batch — step = fixed + per_request × batch + per_kv × tokens of context in the batch.

    The step is fitted online by exponentially weighted least squares over finished requests
    (weighted by how many tokens each decoded), pulled toward the prior until data says
    otherwise; what it measures is the effective step, prefill stalls included.
    """

    prefill_s_per_token: float = 1 / _PRIOR_PREFILL_TPS
    prefill_seen: int = 0
    # Older requests fade by 0.97 per observation.
    step: Ridge3 = field(default_factory=lambda: Ridge3(_PRIOR_STEP, _RIDGE, 0.97))
    output_tokens: float = _PRIOR_OUTPUT_TOKENS  # typical answer here, for requests it can't see
    fixed: Callable[[int, float], float] | None = None  # a known step function: the oracle's

    @property
    def prefill_tps(self) -> float:
        return 1 / self.prefill_s_per_token

    def observe_prefill(self, tokens: float, seconds: float) -> None:
        if tokens <= 0 or seconds <= 0:
            return
        sample = seconds / tokens
        if self.prefill_seen == 0:
            self.prefill_s_per_token = sample
        else:  # a prefill that also waited for room counts as at most 3× slow
            sample = min(sample, 3 * self.prefill_s_per_token)
            self.prefill_s_per_token += 0.1 * (sample - self.prefill_s_per_token)
        self.prefill_seen += 1

    def observe_decode(
        self, batch: float, kv_tokens: float, seconds_per_token: float, weight: float = 1.0
    ) -> None:
        """One request's decode: mean batch and KV while it decoded, and its time per token."""
        if batch <= 0 or seconds_per_token <= 0 or weight <= 0 or self.fixed is not None:
            return
        self.step.add((1.0, batch, kv_tokens / 1000), seconds_per_token, weight)

    def observe_output(self, tokens: int) -> None:
        self.output_tokens += 0.05 * (tokens - self.output_tokens)

    def step_s(self, batch: int, kv_tokens: float = 0.0) -> float:
        """Seconds per decode step with `batch` requests holding `kv_tokens` of context."""
        if self.fixed is not None:
            return self.fixed(batch, kv_tokens)
        a, b, c = self.step.coef
        return max(a, 1e-5) + b * batch + c * kv_tokens / 1000
