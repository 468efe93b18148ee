"""The log-probability tests, where an endpoint exposes logprobs (llama.cpp server, vLLM, OpenAI).

`logprob_test`: each probe is also asked for one greedy token with its top-k log-probabilities, a
few times per run. Per probe, every sample becomes a vector over the tokens any sample ranked (a
token missing from a sample's top-k gets that sample's lowest log-probability: it was at most that
likely). The statistic sums, over probes, the mean absolute difference between the runs' mean
vectors; the p-value comes from shuffling labels within probes, so serving noise (batching,
kernels) that varies log-probabilities between identical requests is part of the null.

`token_logprob_test`: the log-probabilities the endpoint reports for the tokens it sampled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from turnout.fingerprint.evidence import Evidence, not_applicable
from turnout.fingerprint.permutation import Shuffles, p_value, stratified_mean_difference
from turnout.fingerprint.samples import Sample


def _vectors(samples: Sequence[Sample], tokens: list[str]) -> np.ndarray:
    rows = []
    for s in samples:
        lp = s.logprobs or {}
        floor = min(lp.values()) if lp else 0.0
        rows.append([lp.get(t, floor) for t in tokens])
    return np.asarray(rows, float)


def logprob_test(
    baseline: Sequence[Sample],
    fresh: Sequence[Sample],
    *,
    shuffles: Shuffles,
) -> Evidence:
    b_by: dict[str, list[Sample]] = defaultdict(list)
    f_by: dict[str, list[Sample]] = defaultdict(list)
    for s in baseline:
        b_by[s.probe].append(s)
    for s in fresh:
        f_by[s.probe].append(s)
    probes = [p for p in b_by if p in f_by]
    if not probes:
        side = "baseline" if not baseline else "fresh run" if not fresh else "both runs"
        return not_applicable("logprob", f"no log-probabilities in the {side}")
    stats = np.zeros(shuffles.permutations + 1)
    top_changed = 0
    for p in probes:
        both = b_by[p] + f_by[p]
        tokens = sorted({t for s in both for t in s.logprobs or {}})
        x = _vectors(both, tokens)
        nb, nf = len(b_by[p]), len(f_by[p])
        labels = shuffles.labels(f"logprob:{p}", nb, nf)
        mean_b = (labels @ x) / nb
        mean_f = (~labels @ x) / nf
        stats += np.abs(mean_b - mean_f).mean(axis=1)
        top_changed += int(np.argmax(mean_b[0]) != np.argmax(mean_f[0]))
    effect = float(stats[0] / len(probes))
    # Identical log-probabilities throughout: nothing to see.
    p_val = 1.0 if np.all(stats == stats[0]) else p_value(stats)
    return Evidence(
        "logprob",
        p_val,
        effect,
        "mean |Δ log-probability| (nats)",
        f"top token changed on {top_changed} of {len(probes)} probes",
        n_baseline=len(baseline),
        n_fresh=len(fresh),
    )


def token_logprob_test(
    baseline: Mapping[str, Sequence[Sample]],
    fresh: Mapping[str, Sequence[Sample]],
    *,
    shuffles: Shuffles,
) -> Evidence:
    """The mean log-probability the endpoint reports for the tokens it sampled, per completion.

    Colder sampling picks likelier tokens, a hidden prompt or another model changes how likely
    they are: either moves this, and with far fewer samples than the text alone needs.
    """
    b: dict[str, np.ndarray] = {}
    f: dict[str, np.ndarray] = {}
    for probe, samples in baseline.items():
        vb = [s.token_logprob for s in samples if s.token_logprob is not None]
        vf = [s.token_logprob for s in fresh.get(probe, ()) if s.token_logprob is not None]
        if vb and vf:
            b[probe], f[probe] = np.asarray(vb), np.asarray(vf)
    if not b:
        return not_applicable("token_logprob", "no log-probabilities of sampled tokens")
    diff, p_val, base = stratified_mean_difference(b, f, shuffles)
    return Evidence(
        "token_logprob",
        p_val,
        diff,
        "change in mean log-probability per sampled token (nats)",
        f"sampled tokens' mean log-probability {base:.2f} → {base + diff:.2f}",
        n_baseline=sum(map(len, b.values())),
        n_fresh=sum(map(len, f.values())),
    )
