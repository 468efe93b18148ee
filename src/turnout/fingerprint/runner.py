"""The probe runner: a suite's samples from one deployment, concurrently, within a budget.

It speaks to the deployment through turnout's own Backend, so a probe sees exactly what routed
traffic sees from that deployment. Samples go out round-robin over the probes, so a run that the
budget cuts short still covers every probe evenly.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from turnout.backends.base import Backend, Failure, Operation, UpstreamError, UpstreamRequest
from turnout.config import Price
from turnout.fingerprint.samples import LOGPROB, SAMPLE, ProbeRun, Sample
from turnout.fingerprint.suite import Probe, Suite

Progress = Callable[[int, int], None]  # (requests done, requests planned)


@dataclass(frozen=True, slots=True)
class Budget:
    """What one run may spend. A sample is sent only if its worst case still fits."""

    max_samples: int | None = None
    max_cost_usd: float | None = None


def new_id(prefix: str) -> str:
    """Sortable by time: milliseconds, then randomness."""
    return f"{prefix}{int(time.time() * 1000):012x}{os.urandom(4).hex()}"


def sample_seed(seed: int, probe: str, index: int) -> int:
    digest = hashlib.sha256(f"{seed}:{probe}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def _prompt_chars(probe: Probe) -> int:
    if probe.prompt is not None:
        return len(probe.prompt)
    return sum(len(m.get("content", "")) for m in probe.messages or ())


def _text(op: Operation, body: dict[str, Any]) -> tuple[str, str | None]:
    choice = (body.get("choices") or [{}])[0]
    if op is Operation.COMPLETION:
        text = choice.get("text")
    else:
        text = (choice.get("message") or {}).get("content")
    return (text if isinstance(text, str) else ""), choice.get("finish_reason")


def top_logprobs(body: dict[str, Any]) -> dict[str, float] | None:
    """The first generated token's top-k log-probabilities, in either shape OpenAI-compatible
    servers use (legacy completions: `top_logprobs[0]` a mapping; chat: `content[0]`).

    None when the response has no log-probabilities at all; empty when it has the field but no
    token in it (llama.cpp leaves out an end-of-text token).
    """
    choice = (body.get("choices") or [{}])[0]
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    top = lp.get("top_logprobs")
    if isinstance(top, list):
        first = top[0] if top and isinstance(top[0], dict) else {}
        return {str(t): float(v) for t, v in first.items() if isinstance(v, int | float)}
    content = lp.get("content")
    if isinstance(content, list):
        alts = (
            content[0].get("top_logprobs") if content and isinstance(content[0], dict) else None
        ) or []
        return {
            str(a["token"]): float(a["logprob"])
            for a in alts
            if isinstance(a, dict) and isinstance(a.get("logprob"), int | float)
        }
    return None


def mean_token_logprob(body: dict[str, Any]) -> float | None:
    """The mean log-probability of the generated tokens, if the response reports them."""
    choice = (body.get("choices") or [{}])[0]
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    values = lp.get("token_logprobs")
    if not isinstance(values, list):
        content = lp.get("content")
        values = (
            [c.get("logprob") for c in content if isinstance(c, dict)]
            if isinstance(content, list)
            else []
        )
    numbers = [float(v) for v in values if isinstance(v, int | float)]
    return sum(numbers) / len(numbers) if numbers else None


class ProbeRunner:
    def __init__(
        self,
        backend: Backend,
        suite: Suite,
        *,
        deployment: str | None = None,
        price: Price | None = None,
        budget: Budget | None = None,
        concurrency: int = 2,
        seed: int | None = None,
        logprob_repeats: int = 2,
        progress: Progress | None = None,
    ) -> None:
        self.backend = backend
        self.suite = suite
        self.deployment = deployment or backend.name
        self.price = price or Price()
        self.budget = budget or Budget()
        self.concurrency = max(1, concurrency)
        self.seed = seed
        self.logprob_repeats = logprob_repeats
        self.progress = progress
        self._reserved = 0.0
        self._stopped: str = ""
        self._logprobs_offered = False  # learnt from the first log-probability request
        self._done = self._total = 0  # requests, for progress

    def plan(self) -> list[tuple[Probe, int]]:
        jobs = [(p, r) for r in range(self.suite.samples_per_probe) for p in self.suite.probes]
        if self.budget.max_samples is not None:
            jobs = jobs[: self.budget.max_samples]
        return jobs

    async def run(self) -> ProbeRun:
        suite = self.suite
        run = ProbeRun(
            id=new_id("fp"),
            deployment=self.deployment,
            suite=suite.name,
            suite_digest=suite.digest(),
            started=time.time(),
            sampling={**suite.sampling.body(), "samples_per_probe": suite.samples_per_probe},
            suite_spec=suite.to_spec(),
        )
        jobs = self.plan()
        greedy = self._greedy_jobs()
        self._total, self._done = len(jobs) + len(greedy), 0
        queue = iter(jobs)
        if greedy:
            await self._logprobs(run, greedy)

        async def worker() -> None:
            for probe, index in queue:
                if not self._reserve(probe, run):
                    return
                run.samples.append(await self._sample(run, probe, index))
                self._tick()

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(jobs) or 1))))
        run.ended = time.time()
        run.note = self._stopped
        return run

    def _tick(self, done: int = 1, dropped: int = 0) -> None:
        """`done` requests answered, `dropped` no longer planned."""
        self._done += done
        self._total -= dropped
        if self.progress is not None:
            self.progress(self._done, self._total)

    def _greedy_jobs(self) -> list[tuple[Probe, int]]:
        if self.suite.logprobs <= 0:
            return []
        return [(p, r) for r in range(self.logprob_repeats) for p in self.suite.probes]

    def _worst_cost(self, probe: Probe, max_tokens: int) -> float:
        # ~3 characters a token is a generous guess for the prompt: the budget is an upper bound.
        return self.price.cost(math.ceil(_prompt_chars(probe) / 3) + 8, max_tokens)

    def _reserve(self, probe: Probe, run: ProbeRun) -> bool:
        limit = self.budget.max_cost_usd
        if limit is None:
            return True
        worst = self._worst_cost(probe, self.suite.sampling.max_tokens)
        if run.cost_usd + self._reserved + worst > limit:
            self._stopped = f"cost budget ${limit:g} reached"
            return False
        self._reserved += worst
        return True

    def _request(
        self, probe: Probe, index: int, extra: dict[str, Any], run: ProbeRun
    ) -> UpstreamRequest:
        body = {**probe.body(), **self.suite.sampling.body(), **extra}
        if self.seed is not None:
            body["seed"] = sample_seed(self.seed, probe.id, index)
        return UpstreamRequest(probe.operation, body, f"{run.id}-{probe.id}-{index}")

    async def _call(self, request: UpstreamRequest, sample: Sample) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            done = await self.backend.complete(request)
        except UpstreamError as exc:
            sample.error = f"{exc.failure.value}: {exc.message}"
            return None
        sample.latency_s = time.perf_counter() - started
        body = done.body
        sample.prompt_tokens = done.usage.prompt_tokens
        sample.completion_tokens = done.usage.completion_tokens
        model, fingerprint = body.get("model"), body.get("system_fingerprint")
        sample.model = model if isinstance(model, str) else None
        sample.system_fingerprint = fingerprint if isinstance(fingerprint, str) else None
        return body

    async def _sample(self, run: ProbeRun, probe: Probe, index: int) -> Sample:
        sample = Sample(probe=probe.id, kind=SAMPLE)
        extra: dict[str, Any] = {}
        if self._logprobs_offered:
            # The sampled tokens' own log-probabilities: sharper than text alone at telling a
            # colder or hotter sampler apart. Asking does not change what is sampled.
            extra["logprobs"] = 1 if probe.operation is Operation.COMPLETION else True
        body = await self._call(self._request(probe, index, extra, run), sample)
        if self.budget.max_cost_usd is not None:
            self._reserved -= self._worst_cost(probe, self.suite.sampling.max_tokens)
        if body is not None:
            sample.text, sample.finish_reason = _text(probe.operation, body)
            sample.token_logprob = mean_token_logprob(body) if self._logprobs_offered else None
            run.cost_usd += self.price.cost(sample.prompt_tokens, sample.completion_tokens)
        return sample

    async def _logprobs(self, run: ProbeRun, jobs: list[tuple[Probe, int]]) -> None:
        """Greedy first tokens with their log-probabilities, if the endpoint gives them."""
        k = self.suite.logprobs
        for i, (probe, r) in enumerate(jobs):
            extra: dict[str, Any] = {"temperature": 0.0, "max_tokens": 1}
            if probe.operation is Operation.COMPLETION:
                extra["logprobs"] = k
            else:
                extra.update(logprobs=True, top_logprobs=k)
            sample = Sample(probe=probe.id, kind=LOGPROB)
            body = await self._call(self._request(probe, 10_000 + r, extra, run), sample)
            if body is not None:
                sample.logprobs = top_logprobs(body)
                sample.text, sample.finish_reason = _text(probe.operation, body)
                run.cost_usd += self.price.cost(sample.prompt_tokens, sample.completion_tokens)
            self._tick()
            if i == 0 and sample.logprobs is None:
                # Not offered (or refused): one request told us, the rest would be waste.
                failure = sample.error or ""
                if not failure or failure.startswith(Failure.CLIENT_ERROR.value):
                    self._tick(done=0, dropped=len(jobs) - 1)
                    return
            self._logprobs_offered = self._logprobs_offered or sample.logprobs is not None
            run.samples.append(sample)


async def collect(backend: Backend, suite: Suite, **options: Any) -> ProbeRun:
    """One probe run; see ProbeRunner for the options."""
    return await ProbeRunner(backend, suite, **options).run()
