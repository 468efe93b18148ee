"""Typicality: how expected each completion is among all the completions gathered.

A character n-gram model (Witten–Bell interpolation, orders 1–6) is fitted to the completions of
both runs together; each completion is scored by its mean surprisal per character under that
model with its own counts left out. Colder sampling, a hidden prompt that narrows the answers or a
more fluent model makes the fresh completions more typical; hotter sampling or a garbling model,
less. The model sees both runs alike, so the scores do not depend on which run a completion came
from and the within-probe permutation test stays exact. Scores are ranked within each probe, so
probes whose completions are long, short or in another script weigh alike.

This test catches a change of temperature that the MMD test mostly misses: hot completions of a
small model wander far apart character by character whatever the temperature, but a colder
sample picks likelier, more common continuations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from turnout.fingerprint.evidence import Evidence, not_applicable
from turnout.fingerprint.permutation import (
    Shuffles,
    stratified_mean_difference,
    within_probe_ranks,
)

ORDER = 6


def _hash_step(h: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Extend hashed prefixes by one character (splitmix64's mixing, vectorised)."""
    with np.errstate(over="ignore"):
        x = (h ^ codes) + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


def _counts(keys: np.ndarray) -> np.ndarray:
    """For each position, how many positions share its key."""
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    out: np.ndarray = counts[inverse]
    return out


def _own_counts(keys: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """For each position, how many positions of the same text share its key (exact)."""
    order = np.lexsort((owner, keys))
    k, o = keys[order], owner[order]
    new = np.r_[True, (k[1:] != k[:-1]) | (o[1:] != o[:-1])]
    group = np.cumsum(new) - 1
    sizes = np.bincount(group)
    out = np.empty(len(keys), np.int64)
    out[order] = sizes[group]
    return out


def surprisal(texts: Sequence[str], order: int = ORDER) -> np.ndarray:
    """Mean surprisal (nats per character) of each text, leave-one-out, under a Witten–Bell
    character n-gram model fitted to all the texts. N-grams are hashed to 64 bits."""
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    if lengths.sum() == 0:
        return np.zeros(len(texts))
    codes = np.fromiter((ord(c) + 1 for t in texts for c in t), np.uint64, int(lengths.sum()))
    owner = np.repeat(np.arange(len(texts)), lengths)
    starts = np.repeat(np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    at_start = np.arange(len(codes)) == starts
    p = np.full(len(codes), 1.0 / (len(np.unique(codes)) + 1))
    ctx = np.zeros(len(codes), np.uint64)  # the characters before each position, hashed
    for _ in range(order):
        gram = _hash_step(ctx, codes)
        # Counts in the other texts: all texts, less the text's own.
        c_gram = _counts(gram) - _own_counts(gram, owner)
        c_ctx = _counts(ctx) - _own_counts(ctx, owner)
        # Witten–Bell's escape mass: how many distinct characters follow this context.
        _, first = np.unique(gram, return_index=True)
        contexts, followers = np.unique(ctx[first], return_counts=True)
        types = followers[np.searchsorted(contexts, ctx)]
        p = np.where(c_ctx > 0, (c_gram + types * p) / np.maximum(c_ctx + types, 1), p)
        # One order up, a position's context is the n-gram that ended just before it (at the
        # start of a text: the start itself, hash 0; near it, the shorter prefix).
        ctx = np.r_[np.uint64(0), gram[:-1]]
        ctx[at_start] = 0
    total = np.bincount(owner, weights=-np.log(p), minlength=len(texts))
    return np.divide(total, lengths, out=np.zeros(len(texts)), where=lengths > 0)


def typicality_test(
    baseline: Mapping[str, Sequence[str]],
    fresh: Mapping[str, Sequence[str]],
    *,
    shuffles: Shuffles,
) -> Evidence:
    probes = [p for p in baseline if baseline[p] and fresh.get(p)]
    texts = [t for p in probes for t in (*baseline[p], *fresh[p])]
    if not probes or not any(texts):
        return not_applicable("typicality", "no text to compare")
    scores = surprisal(texts)
    sb: dict[str, np.ndarray] = {}
    sf: dict[str, np.ndarray] = {}
    i = 0
    for p in probes:
        nb, nf = len(baseline[p]), len(fresh[p])
        sb[p], sf[p] = scores[i : i + nb], scores[i + nb : i + nb + nf]
        i += nb + nf
    _, p_val, _ = stratified_mean_difference(*within_probe_ranks(sb, sf), shuffles)
    diff, _, base = stratified_mean_difference(sb, sf, Shuffles(0))
    way = "more typical (colder, narrower)" if diff < 0 else "less typical (hotter, stranger)"
    return Evidence(
        "typicality",
        p_val,
        diff,
        "change in surprisal (nats/char)",
        f"fresh completions {way}: {base:.2f} → {base + diff:.2f} nats per character",
        n_baseline=sum(map(len, sb.values())),
        n_fresh=sum(map(len, sf.values())),
    )
