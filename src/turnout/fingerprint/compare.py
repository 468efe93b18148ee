"""Compare a fresh probe run with a stored baseline: every test, then the combined verdict."""

from __future__ import annotations

import numpy as np

from turnout.errors import TurnoutError
from turnout.fingerprint.agreement import agreement_test
from turnout.fingerprint.evidence import Evidence
from turnout.fingerprint.logprobs import logprob_test, token_logprob_test
from turnout.fingerprint.mmd import MAX_CHARS, mmd_test
from turnout.fingerprint.permutation import Shuffles
from turnout.fingerprint.samples import ProbeRun
from turnout.fingerprint.signals import latency_test, length_test, metadata_test, unanswered_test
from turnout.fingerprint.typicality import typicality_test
from turnout.fingerprint.verdict import Verdict, holm

ALPHA = 0.05
PERMUTATIONS = 1000


class IncomparableRuns(TurnoutError, ValueError):
    """The runs did not send the same probes at the same settings."""


def compare(
    baseline: ProbeRun,
    fresh: ProbeRun,
    *,
    alpha: float = ALPHA,
    permutations: int = PERMUTATIONS,
    max_chars: int = MAX_CHARS,
    seed: int | None = None,
    latency_votes: bool = False,
) -> Verdict:
    if baseline.suite_digest != fresh.suite_digest:
        raise IncomparableRuns(
            f"run {fresh.id} used suite {fresh.suite!r} ({fresh.suite_digest}), the baseline "
            f"{baseline.id} used {baseline.suite!r} ({baseline.suite_digest}): probes or "
            "sampling settings differ"
        )
    shuffles = Shuffles(permutations, np.random.default_rng(seed))
    b_by, f_by = baseline.by_probe(), fresh.by_probe()
    texts_b = {p: [s.text for s in v] for p, v in b_by.items()}
    texts_f = {p: [s.text for s in v] for p, v in f_by.items()}
    answered_b = baseline.completions() + baseline.logprob_samples()
    answered_f = fresh.completions() + fresh.logprob_samples()
    evidence: list[Evidence] = [
        mmd_test(texts_b, texts_f, max_chars=max_chars, shuffles=shuffles),
        typicality_test(texts_b, texts_f, shuffles=shuffles),
        agreement_test(texts_b, texts_f, shuffles=shuffles),
        length_test(b_by, f_by, shuffles=shuffles),
        unanswered_test(baseline.attempts_by_probe(), fresh.attempts_by_probe(), shuffles=shuffles),
        metadata_test(answered_b, answered_f, shuffles=shuffles),
        logprob_test(baseline.logprob_samples(), fresh.logprob_samples(), shuffles=shuffles),
        token_logprob_test(b_by, f_by, shuffles=shuffles),
        latency_test(b_by, f_by, shuffles=shuffles, votes=latency_votes),
    ]
    verdict = holm(evidence, alpha)
    verdict.baseline_run, verdict.fresh_run = baseline.id, fresh.id
    if fresh.note:
        verdict.notes.append(f"fresh run: {fresh.note}")
    errors = fresh.errors
    if errors:
        verdict.notes.append(f"fresh run: {errors} of {len(fresh.samples)} requests failed")
    return verdict
