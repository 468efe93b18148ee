"""Semantic similarity with a threshold calibrated on the baseline model's own variation.

A fixed cut-off ("cosine ≥ 0.8") means different things for different prompts: a factual answer
varies little from run to run, a creative one a lot. So the threshold comes from the baseline:
answers the accepted model gave to the same prompt are compared with each other, and a new answer
must sit as close to them as they sit to one another (a low quantile of their pairwise
similarities, less a small tolerance).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from turnout.testing._minilm import embed

MODEL = "all-MiniLM-L6-v2"


def _vector(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in np.frombuffer(base64.b64decode(text), dtype="<f4"))


def similarity(a: str, b: str) -> float:
    """Cosine similarity of two texts' all-MiniLM-L6-v2 embeddings (−1 … 1, ~1 for paraphrases)."""
    vectors = embed([a, b])
    return float(vectors[0] @ vectors[1])


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class Calibration:
    """Baseline answers to one prompt and the similarity a new answer must reach."""

    answers: tuple[str, ...]
    threshold: float
    pairwise_mean: float
    pairwise_min: float
    quantile: float
    tolerance: float
    # The answers' embeddings, kept so a check embeds only the new answer.
    vectors: tuple[tuple[float, ...], ...] = ()

    def score(self, answer: str) -> float:
        """The median similarity of `answer` to the baseline answers."""
        if len(self.vectors) == len(self.answers):
            baseline = np.array(self.vectors, dtype=np.float32)
            mine = embed([answer])[0]
        else:
            both = embed([answer, *self.answers])
            mine, baseline = both[0], both[1:]
        return _quantile(sorted(float(mine @ v) for v in baseline), 0.5)

    def as_json(self) -> dict[str, Any]:
        return {
            "answers": list(self.answers),
            "threshold": self.threshold,
            "pairwise_mean": self.pairwise_mean,
            "pairwise_min": self.pairwise_min,
            "quantile": self.quantile,
            "tolerance": self.tolerance,
            "model": MODEL,
            # float32, base64: exact, and one line per answer instead of 384
            "vectors": [
                base64.b64encode(np.array(v, dtype="<f4").tobytes()).decode() for v in self.vectors
            ],
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(orjson.dumps(self.as_json(), option=orjson.OPT_INDENT_2) + b"\n")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        d = orjson.loads(Path(path).read_bytes())
        same_model = d.get("model") == MODEL
        return cls(
            tuple(d["answers"]),
            d["threshold"],
            d["pairwise_mean"],
            d["pairwise_min"],
            d["quantile"],
            d["tolerance"],
            tuple(_vector(v) for v in d.get("vectors") or ()) if same_model else (),
        )


def calibrate(
    baseline_answers: Sequence[str], *, quantile: float = 0.1, tolerance: float = 0.05
) -> Calibration:
    """The threshold from the baseline's run-to-run variation: the `quantile` of the pairwise
    similarities between its answers, minus `tolerance`."""
    answers = tuple(baseline_answers)
    if len(answers) < 2:
        raise ValueError("calibration needs at least two baseline answers to measure variation")
    vectors = embed(list(answers))
    pairs = [
        float(vectors[i] @ vectors[j])
        for i in range(len(answers))
        for j in range(i + 1, len(answers))
    ]
    threshold = _quantile(pairs, quantile) - tolerance
    kept = tuple(tuple(float(x) for x in v) for v in vectors)
    return Calibration(
        answers, threshold, sum(pairs) / len(pairs), min(pairs), quantile, tolerance, kept
    )


def assert_similar(
    answer: str, baseline: Calibration | str, threshold: float | None = None
) -> float:
    """`answer` means what the baseline means: against a Calibration, its median similarity to
    the baseline answers reaches the calibrated threshold; against one reference text, the
    given `threshold`. Returns the score."""
    if isinstance(baseline, Calibration):
        score, needed = (
            baseline.score(answer),
            baseline.threshold if threshold is None else threshold,
        )
    else:
        if threshold is None:
            raise ValueError("a single reference text needs an explicit threshold; or calibrate()")
        score, needed = similarity(answer, baseline), threshold
    if score < needed:
        raise AssertionError(
            f"answer is not similar enough to the baseline: similarity {score:.3f} < "
            f"threshold {needed:.3f}\n  answer: {answer[:300]!r}"
        )
    return score
