"""Agreement: how long a stretch each completion's opening shares with the other completions of
its probe — a dispersion test, the one that sees a change of temperature from text alone.

Sampling temperature moves how concentrated a model's first tokens are far more than anything
later in a completion: colder sampling repeats the likeliest opening, so completions share longer
prefixes with one another; hotter sampling wanders off at once. Each completion is scored by the
mean of log(1 + common prefix length in characters) with every other completion of its probe, both
runs pooled, so the score does not depend on which run a completion came from and the
within-probe permutation test stays exact. Scores are ranked within each probe, like typicality.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from turnout.fingerprint.evidence import Evidence, not_applicable
from turnout.fingerprint.mmd import char_codes
from turnout.fingerprint.permutation import (
    Shuffles,
    stratified_mean_difference,
    within_probe_ranks,
)

PREFIX_CHARS = 64  # agreement past this many characters says nothing about the sampler


def common_prefixes(texts: Sequence[str], length: int = PREFIX_CHARS) -> np.ndarray:
    """(n, n) length in characters of the common prefix of each pair of texts."""
    codes = char_codes(texts, length)
    same = (codes[:, None, :] == codes[None, :, :]) & (codes[:, None, :] >= 0)
    out: np.ndarray = np.cumprod(same, axis=2).sum(axis=2)
    return out


def agreement_scores(texts: Sequence[str]) -> np.ndarray:
    """Each text's mean log(1 + common prefix) with the others (0 for a text with no others)."""
    n = len(texts)
    if n < 2:
        return np.zeros(n)
    logs = np.log1p(common_prefixes(texts))
    np.fill_diagonal(logs, 0.0)
    out: np.ndarray = logs.sum(axis=1) / (n - 1)
    return out


def _within(prefixes: np.ndarray) -> tuple[float, int]:
    n = len(prefixes)
    return float(prefixes.sum() - np.trace(prefixes)), n * (n - 1)


def agreement_test(
    baseline: Mapping[str, Sequence[str]],
    fresh: Mapping[str, Sequence[str]],
    *,
    shuffles: Shuffles,
) -> Evidence:
    probes = [p for p in baseline if baseline[p] and fresh.get(p)]
    if not probes or not any(t for p in probes for t in (*baseline[p], *fresh[p])):
        return not_applicable("agreement", "no text to compare")
    sb: dict[str, np.ndarray] = {}
    sf: dict[str, np.ndarray] = {}
    sums = np.zeros(2)  # mean common prefix within the baseline, within the fresh run
    pairs = np.zeros(2)
    for p in probes:
        nb = len(baseline[p])
        texts = [*baseline[p], *fresh[p]]
        scores = agreement_scores(texts)
        sb[p], sf[p] = scores[:nb], scores[nb:]
        prefixes = common_prefixes(texts)
        for side, block in enumerate((prefixes[:nb, :nb], prefixes[nb:, nb:])):
            total, count = _within(block)
            sums[side] += total
            pairs[side] += count
    scores_all = np.concatenate([*sb.values(), *sf.values()])
    if np.all(scores_all == scores_all[0]):
        return not_applicable("agreement", "every completion opens alike")
    _, p_val, _ = stratified_mean_difference(*within_probe_ranks(sb, sf), shuffles)
    diff, _, _ = stratified_mean_difference(sb, sf, Shuffles(0))
    within = [s / c if c else float("nan") for s, c in zip(sums, pairs, strict=True)]
    way = "alike (colder, narrower)" if diff > 0 else "apart (hotter, wider)"
    return Evidence(
        "agreement",
        p_val,
        diff,
        "change in mean log(1 + common prefix)",
        f"fresh completions open more {way}: two completions of a probe share "
        f"{within[0]:.1f} → {within[1]:.1f} leading characters",
        n_baseline=sum(map(len, sb.values())),
        n_fresh=sum(map(len, sf.values())),
    )
