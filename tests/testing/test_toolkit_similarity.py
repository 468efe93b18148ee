"""Semantic similarity on all-MiniLM-L6-v2, run offline from its PyPI package."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from turnout.testing import assert_similar, calibrate
from turnout.testing._minilm import embed
from turnout.testing.similarity import Calibration, similarity

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"


def test_embeddings_match_sentence_transformers() -> None:
    ref = json.loads(REFERENCE.read_text())
    mine = embed(ref["texts"])
    assert np.abs(mine - np.array(ref["embeddings"])).max() < 1e-5


def test_paraphrases_are_closer_than_unrelated_texts() -> None:
    para = similarity(
        "Your package will arrive on Tuesday.", "The parcel should be delivered Tuesday."
    )
    other = similarity("Your package will arrive on Tuesday.", "Photosynthesis needs sunlight.")
    assert para > 0.6 > 0.2 > other


BASELINE = [
    "Your order A1234 has shipped and should arrive in Paris on Tuesday.",
    "Order A1234 is on its way; expect it in Paris by Tuesday.",
    "Good news: A1234 shipped and will be delivered to Paris Tuesday.",
    "A1234 has been dispatched and is due in Paris on Tuesday.",
]


def test_the_threshold_comes_from_the_baselines_own_variation(tmp_path: Path) -> None:
    cal = calibrate(BASELINE)
    assert cal.pairwise_min - cal.tolerance <= cal.threshold <= cal.pairwise_mean
    cal.save(tmp_path / "cal.json")
    loaded = Calibration.load(tmp_path / "cal.json")
    assert (loaded.answers, loaded.threshold) == (cal.answers, cal.threshold)
    answer = "Your order A1234 shipped; it reaches Paris on Tuesday."
    score = assert_similar(answer, loaded)  # from the stored vectors: one text embedded
    assert score >= cal.threshold and score == pytest.approx(cal.score(answer), abs=1e-5)
    with pytest.raises(AssertionError, match="not similar enough"):
        assert_similar("I cannot help with that request.", cal)


def test_a_single_reference_needs_an_explicit_threshold() -> None:
    with pytest.raises(ValueError, match="explicit threshold"):
        assert_similar("a", "b")
    assert assert_similar("The cat sat on the mat.", "A cat was sitting on the mat.", 0.7) > 0.7
