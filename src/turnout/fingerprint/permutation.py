"""Permutation machinery shared by the tests: labels shuffled within each probe (stratum).

Under "nothing changed", a probe's baseline and fresh completions are exchangeable, so shuffling
labels within each probe gives the exact null distribution of any statistic, whatever the number
of samples each side has per probe. Row 0 of every label matrix is the observed labelling.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

Labels = np.ndarray  # (permutations + 1, n) booleans: True for a baseline sample


def label_matrix(
    n_baseline: int, n_fresh: int, permutations: int, rng: np.random.Generator
) -> Labels:
    observed = np.r_[np.ones(n_baseline, bool), np.zeros(n_fresh, bool)]
    shuffled = rng.permuted(np.tile(observed, (permutations, 1)), axis=1)
    return np.vstack([observed, shuffled])


class Shuffles:
    """The label permutations of one comparison, drawn once per probe and shared by its tests.

    Sharing is sound: each test still sees uniformly random within-probe permutations, and the
    verdict's Holm procedure holds under any dependence between the tests.
    """

    def __init__(self, permutations: int = 1000, rng: np.random.Generator | None = None) -> None:
        self.permutations = permutations
        self.rng = rng or np.random.default_rng()
        self._cache: dict[tuple[str, int, int], Labels] = {}

    def labels(self, stratum: str, n_baseline: int, n_fresh: int) -> Labels:
        key = (stratum, n_baseline, n_fresh)
        if key not in self._cache:
            self._cache[key] = label_matrix(n_baseline, n_fresh, self.permutations, self.rng)
        return self._cache[key]


def p_value(stats: np.ndarray) -> float:
    """stats[0] observed, the rest under permutation; larger is more surprising."""
    observed = stats[0]
    # A small tolerance: permutations that tie the observed value must count as "as extreme".
    return float((1 + np.sum(stats[1:] >= observed - 1e-12)) / len(stats))


def stratified_mean_difference(
    baseline: Mapping[str, np.ndarray], fresh: Mapping[str, np.ndarray], shuffles: Shuffles
) -> tuple[float, float, float]:
    """Two-sided test of a per-sample value: (weighted fresh−baseline difference, p, baseline
    mean). Strata are weighted like Cochran–Mantel–Haenszel (n_b·n_f/(n_b+n_f)), so an uneven
    mix of probes between the runs is not mistaken for a change."""
    total = np.zeros(shuffles.permutations + 1)
    weight_sum, base_sum = 0.0, 0.0
    for probe, b in baseline.items():
        f = fresh.get(probe, np.zeros(0))
        nb, nf = len(b), len(f)
        if nb == 0 or nf == 0:
            continue
        values = np.r_[b, f].astype(float)
        labels = shuffles.labels(probe, nb, nf)
        mean_b = (labels @ values) / nb
        mean_f = (~labels @ values) / nf
        w = nb * nf / (nb + nf)
        total += w * (mean_f - mean_b)
        weight_sum += w
        base_sum += w * float(np.mean(b))
    if weight_sum == 0:
        return 0.0, 1.0, 0.0
    diffs = total / weight_sum
    return float(diffs[0]), p_value(np.abs(diffs)), base_sum / weight_sum


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank: a function of the values alone, so that which
    run a tied sample came from cannot move its rank."""
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    out: np.ndarray = (sums / counts)[inverse]
    return out


def within_probe_ranks(
    baseline: Mapping[str, np.ndarray], fresh: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each probe's values replaced by their (average) ranks among that probe's values, scaled
    to [0, 1]."""
    rb, rf = {}, {}
    for probe, b in baseline.items():
        both = np.r_[b, fresh[probe]]
        r = average_ranks(both) / max(1, len(both) - 1)
        rb[probe], rf[probe] = r[: len(b)], r[len(b) :]
    return rb, rf
