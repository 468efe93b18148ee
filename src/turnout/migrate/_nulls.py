"""Exact null distributions of the rank statistics, and order statistics found by bisection.

Counts are Python integers (exact); the distributions are polynomial coefficients:
signed-rank T+ ~ ∏(1 + q^i), Mann–Whitney U ~ the Gaussian binomial [m+n choose m]_q.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

EXACT_BELOW = 50  # as R does: exact when every sample is smaller than this and nothing ties


@lru_cache(maxsize=64)
def signed_rank_counts(n: int) -> tuple[int, ...]:
    """Number of sign assignments of ranks 1..n with T+ = t, for t = 0..n(n+1)/2."""
    counts = [1]
    for i in range(1, n + 1):
        grown = counts + [0] * i
        for t in range(len(counts)):
            grown[t + i] += counts[t]
        counts = grown
    return tuple(counts)


@lru_cache(maxsize=64)
def rank_sum_counts(m: int, n: int) -> tuple[int, ...]:
    """Number of arrangements with Mann–Whitney U = u, for u = 0..m·n."""
    poly = [1]
    for i in range(1, m + 1):
        # multiply by (1 − q^(n+i)), then divide by (1 − q^i): both exact on integers
        k = n + i
        grown = poly + [0] * k
        for t in range(len(poly)):
            grown[t + k] -= poly[t]
        for t in range(i, len(grown)):
            grown[t] += grown[t - i]
        poly = grown[: m * n + 1] if len(grown) > m * n + 1 else grown
    return tuple(poly[: m * n + 1])


def upper_tail(counts: tuple[int, ...], observed: float) -> float:
    """P(S ≥ observed) for S distributed as `counts`."""
    start = max(0, math.ceil(observed - 1e-9))
    return sum(counts[start:]) / sum(counts)


def lower_critical(counts: tuple[int, ...], tail: float) -> int:
    """The largest k with P(S ≤ k − 1) ≤ tail: the CI uses the k-th order statistic (0: none)."""
    total = sum(counts)
    cumulative, k = 0, 0
    for s, c in enumerate(counts):
        cumulative += c
        if cumulative / total > tail:
            return s
        k = s + 1
    return k


def kth_smallest(count_at_most: Callable[[float], int], k: int, lo: float, hi: float) -> float:
    """The k-th smallest (1-based) of a finite set of values in [lo, hi], given how many are ≤ θ."""
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if count_at_most(mid) >= k:
            hi = mid
        else:
            lo = mid
    return hi


def walsh_count(sorted_d: np.ndarray) -> Callable[[float], int]:
    """θ ↦ #{i ≤ j : (d_i + d_j)/2 ≤ θ}, without materialising the n(n+1)/2 averages."""

    def count(theta: float) -> int:
        # pairs i < j plus the diagonal, counted from all ordered pairs
        ordered = int(np.searchsorted(sorted_d, 2 * theta - sorted_d, side="right").sum())
        diagonal = int(np.sum(sorted_d <= theta))
        return (ordered + diagonal) // 2

    return count


def difference_count(old: np.ndarray, new: np.ndarray) -> Callable[[float], int]:
    """θ ↦ #{(i, j) : new_j − old_i ≤ θ}."""
    sorted_old = np.sort(old)

    def count(theta: float) -> int:
        # new_j − old_i ≤ θ  ⟺  old_i ≥ new_j − θ
        below = np.searchsorted(sorted_old, new - theta, side="left")
        return int(np.sum(len(sorted_old) - below))

    return count
