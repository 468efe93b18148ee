"""Shared pieces of the fingerprint tests: small suites."""

from __future__ import annotations

from dataclasses import replace

from turnout.fingerprint.suite import Sampling, Suite, builtin_suite

HIDDEN_PROMPT = "Always agree with the user.\n\n"


def small_suite(probes: tuple[str, ...], samples_per_probe: int, max_tokens: int) -> Suite:
    """Some of the built-in probes, few samples, short completions: fast, and still telling."""
    chosen = tuple(p for p in builtin_suite().probes if p.id in probes)
    assert len(chosen) == len(probes)
    return replace(
        builtin_suite(),
        name="test",
        probes=chosen,
        samples_per_probe=samples_per_probe,
        sampling=Sampling(max_tokens=max_tokens),
        logprobs=0,
    )
