"""The MMD two-sample test over completions (Gao, Liang & Guestrin, "Model Equality Testing:
Which Model Is This API Serving?", ICLR 2025).

Samples are (probe, completion) pairs. The kernel is 1[same probe] times a Hamming similarity:
the fraction of the first L character positions at which two completions have the same
character. Characters, not tokens, so two models with different tokenizers compare on equal terms.
Padding past a completion's end never agrees (the paper's padding does): with short completions,
shared padding made everything look alike and drowned the differences in what was said (where a
completion stops is the length test's business). The statistic leaves out each sample's
similarity with itself, and the p-value comes from shuffling the baseline/fresh labels within each
probe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from turnout.fingerprint.evidence import Evidence, not_applicable
from turnout.fingerprint.permutation import Shuffles, p_value

MAX_CHARS = 128  # L: the kernel looks at this many leading characters
_PAD = -1


def char_codes(texts: Sequence[str], length: int) -> np.ndarray:
    """(len(texts), length) code points, cut or padded to `length`."""
    out = np.full((len(texts), length), _PAD, dtype=np.int32)
    for i, text in enumerate(texts):
        codes = [ord(c) for c in text[:length]]
        out[i, : len(codes)] = codes
    return out


def hamming_gram(codes: np.ndarray) -> np.ndarray:
    """(n, n) fraction of positions at which rows hold the same character (padding never)."""
    same = (codes[:, None, :] == codes[None, :, :]) & (codes[:, None, :] != _PAD)
    agree: np.ndarray = same.mean(axis=2)
    return agree


def mmd_statistics(
    grams: Mapping[str, np.ndarray], n_baseline: Mapping[str, int], shuffles: Shuffles
) -> np.ndarray:
    """MMD² for the observed labelling and each permutation, without the diagonal.

    grams[probe] is that probe's kernel matrix over its baseline samples first, then its fresh
    ones. The kernel is block-diagonal across probes, so MMD² is a sum of per-probe quadratic
    forms with weights +1/N_baseline and −1/N_fresh. k(z, z) is left out: it says nothing about
    the other samples, and with unequal run sizes its weight would depend on the labelling.
    """
    nb_total = sum(n_baseline.values())
    nf_total = sum(len(g) for g in grams.values()) - nb_total
    stats = np.zeros(shuffles.permutations + 1)
    for probe, gram in grams.items():
        nb = n_baseline[probe]
        nf = len(gram) - nb
        if nb == 0 or nf == 0:
            continue
        labels = shuffles.labels(probe, nb, nf)
        w = np.where(labels, 1.0 / nb_total, -1.0 / nf_total)
        off = gram - np.diag(np.diag(gram))
        stats += ((w @ off) * w).sum(axis=1)
    return stats


def _similarities(
    grams: Mapping[str, np.ndarray], n_baseline: Mapping[str, int]
) -> tuple[float | None, float | None, float]:
    """Mean kernel within the baseline, within the fresh run and across (diagonal excluded);
    None where a side has no two samples of one probe."""
    sums = np.zeros(3)
    counts = np.zeros(3)
    for probe, gram in grams.items():
        nb = n_baseline[probe]
        bb, ff, bf = gram[:nb, :nb], gram[nb:, nb:], gram[:nb, nb:]
        sums += [bb.sum() - np.trace(bb), ff.sum() - np.trace(ff), bf.sum()]
        counts += [nb * (nb - 1), len(ff) * (len(ff) - 1), bf.size]
    within_b = float(sums[0] / counts[0]) if counts[0] else None
    within_f = float(sums[1] / counts[1]) if counts[1] else None
    return within_b, within_f, float(sums[2] / counts[2])


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def mmd_test(
    baseline: Mapping[str, Sequence[str]],
    fresh: Mapping[str, Sequence[str]],
    *,
    max_chars: int = MAX_CHARS,
    shuffles: Shuffles | None = None,
) -> Evidence:
    shuffles = shuffles or Shuffles()
    probes = [p for p in baseline if baseline[p] and fresh.get(p)]
    if not probes:
        return not_applicable("mmd", "no probe has completions in both runs")
    grams, nbs = {}, {}
    for p in probes:
        grams[p] = hamming_gram(char_codes([*baseline[p], *fresh[p]], max_chars))
        nbs[p] = len(baseline[p])
    stats = mmd_statistics(grams, nbs, shuffles)
    within_b, within_f, across = _similarities(grams, nbs)
    if within_b is not None and within_f is not None:
        # Unbiased MMD² from the three mean similarities, in kernel units.
        effect, label = within_b + within_f - 2 * across, "MMD²"
    else:
        # One completion per probe on a side: say how much less it agrees with the other side.
        known = within_b if within_b is not None else within_f
        effect, label = (known or 0.0) - across, "agreement drop"
    nb_total = sum(nbs.values())
    nf_total = sum(len(g) for g in grams.values()) - nb_total
    detail = (
        f"{len(probes)} probes; character agreement within baseline {_share(within_b)}, "
        f"within fresh {_share(within_f)}, across {_share(across)}"
    )
    return Evidence(
        "mmd", p_value(stats), effect, label, detail, n_baseline=nb_total, n_fresh=nf_total
    )
