"""Checks of 100 completions against a real SmolLM2 behind a loopback proxy that changes it, as a
user of `turnout fingerprint` meets a provider: over HTTP, through the OpenAI-compatible backend,
with log-probabilities where the deployment serves them (turnout's embedded backend does).

Requests and permutations are seeded; each change is sized to be caught with a wide margin (the
benchmark, bench/fingerprint/power.py, measures power at the issue's sizes).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import replace

import pytest
from proxy import Change, ChangingProxy

from turnout.backends.embedded import EmbeddedBackend
from turnout.backends.openai_http import OpenAIHTTPBackend
from turnout.fingerprint.compare import compare
from turnout.fingerprint.runner import ProbeRunner
from turnout.fingerprint.samples import LOGPROB, ProbeRun
from turnout.fingerprint.suite import Sampling, builtin_suite
from turnout.fingerprint.verdict import Verdict

PROBES = (
    "en-history", "en-science", "de-city", "py-prime", "json-person",
    "math-add", "yesno-no", "choice-b", "story", "assist-email",
)  # fmt: skip
SUITE = replace(
    builtin_suite(),
    name="proxy-test",
    probes=tuple(p for p in builtin_suite().probes if p.id in PROBES),
    sampling=Sampling(max_tokens=10),
    samples_per_probe=10,  # a check of 100 completions
    logprobs=5,
)


@pytest.fixture(scope="module")
def proxy(smollm2: EmbeddedBackend) -> Iterator[ChangingProxy]:
    with ChangingProxy(smollm2) as served:
        yield served


def probe(proxy: ChangingProxy, change: Change, seed: int, per_probe: int = 10) -> ProbeRun:
    proxy.change = change

    async def run() -> ProbeRun:
        backend = OpenAIHTTPBackend("assistant", proxy.base_url, "assistant")
        await backend.start()
        try:
            suite = SUITE.with_options(samples_per_probe=per_probe)
            return await ProbeRunner(backend, suite, seed=seed, concurrency=2).run()
        finally:
            await backend.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def baseline(proxy: ChangingProxy) -> ProbeRun:
    return probe(proxy, Change(), seed=1, per_probe=15)


def without_logprobs(run: ProbeRun) -> ProbeRun:
    samples = [replace(s, token_logprob=None) for s in run.samples if s.kind != LOGPROB]
    return replace(run, samples=samples)


def evidence(verdict: Verdict, name: str) -> tuple[bool, float]:
    e = next(e for e in verdict.evidence if e.name == name)
    return e.applicable, e.p_value


def test_logprobs_are_asked_for_and_served_through_the_proxy(baseline: ProbeRun) -> None:
    greedy = [s for s in baseline.samples if s.kind == LOGPROB]
    assert len(greedy) == 2 * len(PROBES) and all(s.ok for s in greedy)
    # Empty only where the likeliest first token ends the answer.
    assert sum(bool(s.logprobs) for s in greedy) >= len(PROBES)
    assert all(s.token_logprob is not None for s in baseline.completions() if s.text)


def test_a_temperature_forced_to_1_3_is_detected_in_100_completions(
    proxy: ChangingProxy, baseline: ProbeRun
) -> None:
    fresh = probe(proxy, Change(temperature=1.3), seed=2)
    assert len(fresh.completions()) == 100
    verdict = compare(baseline, fresh, seed=0)
    assert verdict.changed, verdict.summary()
    assert "token_logprob" in verdict.reasons
    # The greedy log-probabilities do not depend on the sampler: the same model answers.
    applicable, p = evidence(verdict, "logprob")
    assert applicable and p == 1.0
    # From a deployment that serves no logprobs, the text alone shows it.
    text_only = compare(without_logprobs(baseline), without_logprobs(fresh), seed=0)
    assert text_only.changed, text_only.summary()


def test_a_rise_in_empty_answers_is_detected(proxy: ChangingProxy, baseline: ProbeRun) -> None:
    fresh = probe(proxy, Change(empty_share=0.2, rng=random.Random(3)), seed=3)
    assert sum(not s.text for s in fresh.completions()) >= 10
    verdict = compare(baseline, fresh, seed=0)
    assert verdict.changed, verdict.summary()
    assert "unanswered" in verdict.reasons


@pytest.mark.parametrize(("served", "kept", "requests"), [(True, 8, 8), (False, 4, 5)])
def test_progress_counts_every_request_and_drops_logprob_requests_not_served(
    proxy: ChangingProxy, served: bool, kept: int, requests: int
) -> None:
    """2 probes × 2 completions, and 2 greedy logprob requests a probe where they are served (one
    request finds out that they are not)."""
    proxy.change = Change(strip_logprobs=not served)
    seen: list[tuple[int, int]] = []
    suite = replace(SUITE, probes=SUITE.probes[:2], samples_per_probe=2)

    async def run() -> ProbeRun:
        backend = OpenAIHTTPBackend("assistant", proxy.base_url, "assistant")
        await backend.start()
        try:
            runner = ProbeRunner(backend, suite, seed=1, progress=lambda *p: seen.append(p))
            return await runner.run()
        finally:
            await backend.close()

    run = asyncio.run(run())
    assert len(run.samples) == kept
    assert seen[-1] == (requests, requests)
    done = [d for d, _ in seen]
    assert done == sorted(done) and len(set(done)) == requests  # it moves with every request
