"""Cheap signals that need few samples: output length, the share of failed, empty or refused
answers, response metadata, and latency per output token. Each is a permutation test with a
p-value and an effect size."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from turnout.fingerprint.evidence import Evidence, not_applicable
from turnout.fingerprint.permutation import Shuffles, p_value, stratified_mean_difference
from turnout.fingerprint.refusal import is_refusal
from turnout.fingerprint.samples import Sample

ByProbe = Mapping[str, Sequence[Sample]]


Groups = dict[str, np.ndarray]


def _per_probe(
    baseline: ByProbe, fresh: ByProbe, value: Callable[[Sample], float | None]
) -> tuple[Groups, Groups]:
    b_out, f_out = {}, {}
    for probe in baseline:
        if probe not in fresh:
            continue
        b = [v for s in baseline[probe] if (v := value(s)) is not None]
        f = [v for s in fresh[probe] if (v := value(s)) is not None]
        if b and f:
            b_out[probe] = np.asarray(b, float)
            f_out[probe] = np.asarray(f, float)
    return b_out, f_out


def _values(*groups: Groups) -> np.ndarray:
    arrays = [a for g in groups for a in g.values()]
    return np.concatenate(arrays) if arrays else np.zeros(0)


def _constant(*groups: Groups) -> bool:
    values = _values(*groups)
    return values.size == 0 or bool(np.all(values == values[0]))


def _count(groups: Groups) -> int:
    return sum(len(a) for a in groups.values())


def length_test(baseline: ByProbe, fresh: ByProbe, *, shuffles: Shuffles) -> Evidence:
    """Characters per completion (tokenizers differ between models; characters do not)."""
    b, f = _per_probe(baseline, fresh, lambda s: float(len(s.text)))
    if _constant(b, f):
        return not_applicable("length", "every completion has the same length")
    # Raw characters, not ranks: a model whose tokens are longer is longer by much the same
    # number of characters on every probe, and ranks would throw that away.
    diff, p, base = stratified_mean_difference(b, f, shuffles)
    rel = diff / base if base else 0.0
    return Evidence(
        "length",
        p,
        rel,
        "relative change in mean characters",
        f"mean {base:.0f} → {base + diff:.0f} characters per completion",
        n_baseline=_count(b),
        n_fresh=_count(f),
    )


def _unanswered(s: Sample) -> str | None:
    """Why a completion gives the user nothing: failed, empty or refused; None if answered."""
    if not s.ok:
        return "failed"
    if not s.text.strip():
        return "empty"
    return "refused" if is_refusal(s.text) else None


def unanswered_test(baseline: ByProbe, fresh: ByProbe, *, shuffles: Shuffles) -> Evidence:
    """The share of completions that failed, came back empty or refused, over every completion
    asked for (failed ones included): a model that starts failing or refusing changed too."""
    b, f = _per_probe(baseline, fresh, lambda s: float(_unanswered(s) is not None))
    rates = []
    for why in ("failed", "empty", "refused"):
        nb = sum(_unanswered(s) == why for v in baseline.values() for s in v)
        nf = sum(_unanswered(s) == why for v in fresh.values() for s in v)
        tb, tf = max(1, _count(b)), max(1, _count(f))
        rates.append(f"{why} {nb / tb:.1%} → {nf / tf:.1%}")
    if _constant(b, f):
        return not_applicable("unanswered", "; ".join(rates))
    diff, p, _ = stratified_mean_difference(b, f, shuffles)
    return Evidence(
        "unanswered",
        p,
        diff,
        "change in the share failed, empty or refused",
        "; ".join(rates),
        n_baseline=_count(b),
        n_fresh=_count(f),
    )


def latency_test(
    baseline: ByProbe,
    fresh: ByProbe,
    *,
    shuffles: Shuffles,
    votes: bool = False,
) -> Evidence:
    """Seconds per output token, on a log scale. Load moves it too, so by default it informs
    the report without voting in the verdict."""

    def log_spt(s: Sample) -> float | None:
        spt = s.seconds_per_token
        return None if spt is None or spt <= 0 else math.log(spt)

    b, f = _per_probe(baseline, fresh, log_spt)
    if _constant(b, f):
        return not_applicable("latency", "no latency per token to compare", votes=votes)
    diff, p, base = stratified_mean_difference(b, f, shuffles)
    ms = 1000 * math.exp(base)
    return Evidence(
        "latency",
        p,
        math.exp(diff),
        "ratio of time per output token",
        f"{ms:.1f} → {ms * math.exp(diff):.1f} ms per output token (geometric mean)",
        votes=votes,
        n_baseline=_count(b),
        n_fresh=_count(f),
    )


def _meta(s: Sample) -> str:
    return f"model={s.model or '-'} system_fingerprint={s.system_fingerprint or '-'}"


def metadata_test(
    baseline: Sequence[Sample],
    fresh: Sequence[Sample],
    *,
    shuffles: Shuffles,
) -> Evidence:
    """The response's `model` and `system_fingerprint`, as a categorical distribution: total
    variation distance between the runs, with a permutation p-value."""
    b = [_meta(s) for s in baseline]
    f = [_meta(s) for s in fresh]
    if not b or not f or len(set(b + f)) == 1:
        only = b[0] if b else (f[0] if f else "nothing")
        return not_applicable("metadata", f"the same in every response: {only}")
    values = sorted(set(b + f))
    codes = np.array([values.index(v) for v in b + f])
    onehot = np.eye(len(values))[codes]
    labels = shuffles.labels("*", len(b), len(f))
    dist_b = (labels @ onehot) / len(b)
    dist_f = (~labels @ onehot) / len(f)
    tv = 0.5 * np.abs(dist_b - dist_f).sum(axis=1)
    new = sorted(set(f) - set(b))
    gone = sorted(set(b) - set(f))
    parts = []
    if new:
        parts.append("new: " + "; ".join(f"{v} ×{Counter(f)[v]}" for v in new))
    if gone:
        parts.append("gone: " + "; ".join(gone))
    return Evidence(
        "metadata",
        p_value(tv),
        float(tv[0]),
        "total variation distance",
        ", ".join(parts) or "same values, different mix",
        n_baseline=len(b),
        n_fresh=len(f),
    )
