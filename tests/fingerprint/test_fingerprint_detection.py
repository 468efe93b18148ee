"""Detection with real models: SmolLM2 behind a logical name, then what a provider might change.

Each scenario probes through a TamperedBackend around the real embedded models and compares the
run with a SmolLM2 baseline. Requests and permutations are seeded, so every verdict is
reproducible on one machine; across machines llama.cpp may round differently, so every scenario
here is sized to be caught with a wide margin (the benchmark measures power at the issue's sizes).
The probes are the built-in ones that tell most: five that a hidden prompt moves, four whose
answers differ most between the two models.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import pytest
from fingerprint_helpers import HIDDEN_PROMPT, small_suite

from turnout.backends.base import Backend
from turnout.backends.embedded import EmbeddedBackend
from turnout.fingerprint.compare import IncomparableRuns, compare
from turnout.fingerprint.drill import TamperedBackend
from turnout.fingerprint.runner import ProbeRunner
from turnout.fingerprint.samples import ProbeRun
from turnout.fingerprint.suite import Suite

PROMPT_SENSITIVE = ("py-prime", "poem", "en-science", "tips", "assist-email")
MODEL_SENSITIVE = ("ru-city", "ja-city", "zh-city", "choice-c")
SUITE = small_suite(PROMPT_SENSITIVE, samples_per_probe=6, max_tokens=12)
MODELS_SUITE = small_suite(MODEL_SENSITIVE, samples_per_probe=10, max_tokens=12)


def probe(backend: Backend, suite: Suite = SUITE, seed: int = 1, **options: object) -> ProbeRun:
    runner = ProbeRunner(backend, suite, deployment="assistant", seed=seed, **options)  # type: ignore[arg-type]
    return asyncio.run(runner.run())


@pytest.fixture(scope="module")
def baseline(smollm2: EmbeddedBackend) -> ProbeRun:
    return probe(smollm2, seed=1)


@pytest.fixture(scope="module")
def models_baseline(smollm2: EmbeddedBackend) -> ProbeRun:
    return probe(smollm2, MODELS_SUITE, seed=1)


def test_the_same_model_and_settings_are_not_flagged(
    smollm2: EmbeddedBackend, baseline: ProbeRun
) -> None:
    verdict = compare(baseline, probe(smollm2, seed=7), seed=0)
    assert not verdict.changed, verdict.summary()
    assert all(e.p_adjusted is None or e.p_adjusted > 0.05 for e in verdict.evidence)


def test_a_full_swap_is_flagged_from_a_dozen_completions(
    smollm2: EmbeddedBackend, gemma: EmbeddedBackend, models_baseline: ProbeRun
) -> None:
    swapped = TamperedBackend(smollm2, other=gemma, share=1.0)
    fresh = probe(swapped, MODELS_SUITE.with_options(samples_per_probe=3), seed=3)
    assert len(fresh.completions()) == 12
    assert {s.model for s in fresh.completions()} == {"smollm2-135m"}  # the name gives nothing away
    verdict = compare(models_baseline, fresh, seed=0)
    assert verdict.changed, verdict.summary()


def test_a_hidden_system_prompt_is_flagged(smollm2: EmbeddedBackend, baseline: ProbeRun) -> None:
    prefixed = TamperedBackend(smollm2, prefix=HIDDEN_PROMPT)
    verdict = compare(baseline, probe(prefixed, seed=4), seed=0)
    assert verdict.changed, verdict.summary()
    assert "mmd" in verdict.reasons


def test_half_the_traffic_sent_to_another_model_is_flagged(
    smollm2: EmbeddedBackend, gemma: EmbeddedBackend, models_baseline: ProbeRun
) -> None:
    partial = TamperedBackend(smollm2, other=gemma, share=0.5, rng=random.Random(5))
    fresh = probe(partial, MODELS_SUITE.with_options(samples_per_probe=16), seed=5)
    assert 0 < partial.served_by_other < len(fresh.samples)
    verdict = compare(models_baseline, fresh, seed=0)
    assert verdict.changed, verdict.summary()


def test_runs_of_different_suites_are_not_compared(
    smollm2: EmbeddedBackend, baseline: ProbeRun
) -> None:
    other = probe(smollm2, SUITE.with_options(max_tokens=8, samples_per_probe=1), seed=6)
    with pytest.raises(IncomparableRuns):
        compare(baseline, other)


LOGPROB_SUITE = replace(
    small_suite(PROMPT_SENSITIVE, samples_per_probe=6, max_tokens=10), logprobs=5
)


@pytest.fixture(scope="module")
def logprob_baseline(smollm2: EmbeddedBackend) -> ProbeRun:
    return probe(smollm2, LOGPROB_SUITE, seed=1)


def test_where_logprobs_are_offered_they_are_collected_and_agree_for_the_same_model(
    smollm2: EmbeddedBackend, logprob_baseline: ProbeRun
) -> None:
    base = logprob_baseline
    again = probe(smollm2, LOGPROB_SUITE, seed=2)
    assert base.logprob_samples() and all(s.token_logprob is not None for s in base.completions())
    verdict = compare(base, again, seed=0)
    assert not verdict.changed, verdict.summary()
    greedy = next(e for e in verdict.evidence if e.name == "logprob")
    assert greedy.applicable and greedy.p_value == 1.0  # the same model: identical logprobs


def test_a_silent_temperature_change_is_flagged_where_logprobs_are_offered(
    smollm2: EmbeddedBackend, logprob_baseline: ProbeRun
) -> None:
    base = logprob_baseline
    colder = TamperedBackend(smollm2, temperature=0.3)
    verdict = compare(base, probe(colder, LOGPROB_SUITE, seed=3), seed=0)
    assert verdict.changed, verdict.summary()
    assert "token_logprob" in verdict.reasons
    greedy = next(e for e in verdict.evidence if e.name == "logprob")
    assert greedy.p_value == 1.0  # greedy log-probabilities do not depend on temperature
