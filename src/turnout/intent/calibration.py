"""Thresholds of the rephrase decision, and where their values come from.

Fitted on the calibration half of bench/intent/cases (every other case of each kind, in file
order) by `bench/intent/quality.py --calibrate`, which picks, per threshold, the value with the best
F1 on that half; the scores in bench/results/intent_quality.md are on the other half.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Thresholds:
    semantic: float = 0.57  # MiniLM cosine of the new and the earlier user turn: a restatement
    semantic_with_cue: float = 0.55  # the same, when the user says they are rephrasing
    # Without the model (not installed, or late): only the user's own cue and the words decide,
    # with a cue above this character-trigram overlap
    lexical_with_cue: float = 0.50
    # Above this overlap, the words alone settle it and the model is not asked.
    lexical_certain: float = 0.90
    # A new question on the same topic keeps at least this share of the earlier question's words
    # around the one span it swaps (intent/newquestion.py).
    swap_kept: float = 0.40


CALIBRATED = Thresholds()
