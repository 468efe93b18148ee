"""What a probe run collected: every sample, as the endpoint answered it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

SAMPLE = "sample"  # a completion at the suite's sampling settings
LOGPROB = "logprob"  # one greedy token with its top-k log-probabilities


@dataclass(slots=True)
class Sample:
    probe: str
    text: str = ""
    kind: str = SAMPLE
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float | None = None
    model: str | None = None  # the response's `model`
    system_fingerprint: str | None = None
    logprobs: dict[str, float] | None = None  # token → log-probability (kind LOGPROB)
    token_logprob: float | None = None  # mean log-probability of the sampled tokens, if given
    error: str | None = None  # the failure class and message when the request failed

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def seconds_per_token(self) -> float | None:
        if self.latency_s is None or self.completion_tokens < 1:
            return None
        return self.latency_s / self.completion_tokens


@dataclass(slots=True)
class ProbeRun:
    """One collection of samples from one deployment with one suite."""

    id: str
    deployment: str
    suite: str
    suite_digest: str
    started: float
    ended: float | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    cost_usd: float = 0.0
    note: str = ""  # why the run stopped short, if it did
    suite_spec: dict[str, Any] | None = None  # the suite itself (Suite.to_spec)

    def completions(self) -> list[Sample]:
        return [s for s in self.samples if s.kind == SAMPLE and s.ok]

    def logprob_samples(self) -> list[Sample]:
        return [s for s in self.samples if s.kind == LOGPROB and s.ok and s.logprobs]

    def by_probe(self) -> dict[str, list[Sample]]:
        out: dict[str, list[Sample]] = defaultdict(list)
        for s in self.completions():
            out[s.probe].append(s)
        return dict(out)

    def attempts_by_probe(self) -> dict[str, list[Sample]]:
        """Every completion asked for, failed ones included."""
        out: dict[str, list[Sample]] = defaultdict(list)
        for s in self.samples:
            if s.kind == SAMPLE:
                out[s.probe].append(s)
        return dict(out)

    @property
    def errors(self) -> int:
        return sum(not s.ok for s in self.samples)

    @property
    def tokens(self) -> int:
        return sum(s.prompt_tokens + s.completion_tokens for s in self.samples)
