"""Intent signals of one chat request, read from its conversation without a model call.

`scan` is the request-path part: hashes, cue words and a lexical comparison, in well under a
millisecond for a 20-turn conversation (bench/intent). Whether the new user turn restates the
earlier one is settled there when the words make it plain (a near-verbatim repeat; or a new
question: a follow-up word, one swapped subject); otherwise the scan leaves the pair of turns for
the semantic check (`decide_rephrase` with a similarity), which embeds only the new turn.

The kinds are exclusive, most specific first: a request resent as it was (`regenerate`) counts
once; a follow-up to an assistant that asked what was meant (`clarification`) is intent being
resolved, so it is not also counted as a miss; a `correction` says more than a `rephrase`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from turnout.intent.calibration import CALIBRATED, Thresholds
from turnout.intent.conversation import Turn, last_exchange
from turnout.intent.cues import (
    CLARIFYING_RE,
    CORRECTION_RE,
    DISMISSAL_RE,
    FOLLOW_UP_RE,
    OFFER_RE,
    REPHRASE_RE,
    normal,
)
from turnout.intent.newquestion import swapped


class Signal(StrEnum):
    REPHRASE = "rephrase"
    CORRECTION = "correction"
    REGENERATE = "regenerate"
    CLARIFICATION = "clarification"


# The signals that say an earlier answer missed what the user meant.
MISSES = frozenset({Signal.REPHRASE, Signal.CORRECTION, Signal.REGENERATE})
_SHORT_QUESTION = 300  # characters: an answer this short that ends in a question mostly asks


@dataclass(frozen=True, slots=True)
class Scan:
    signal: Signal | None
    # (earlier user turn, new user turn) when only the semantic check can say if it is a rephrase
    undecided: tuple[str, str] | None = None
    lexical: float = 0.0
    cue: bool = False
    answer_at: int | None = None  # index of the assistant turn the new user turn follows
    new_question: bool = False  # the words show a new question, so no rephrase (and no model)


def is_clarifying(answer: str) -> bool:
    """The answer ends by asking what the user meant (not by offering more)."""
    text = normal(answer)
    if not text.rstrip(" )*_\"'").endswith("?"):
        return False
    last = text[max(text.rfind(". ", 0, len(text) - 1), text.rfind("\n"), -1) + 1 :]
    if OFFER_RE.search(last):
        return False
    return len(text) <= _SHORT_QUESTION or CLARIFYING_RE.search(last) is not None


def is_correction(text: str) -> bool:
    t = normal(text)
    return CORRECTION_RE.search(t) is not None and DISMISSAL_RE.search(t) is None


def trigrams(text: str) -> frozenset[str]:
    words = "".join(c if c.isalnum() else " " for c in normal(text)).split()
    padded = f" {' '.join(words)} "
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 2))


def lexical_similarity(a: str, b: str) -> float:
    """Dice overlap of character trigrams: cheap, and blind to which language it is."""
    ta, tb = trigrams(a), trigrams(b)
    if not ta or not tb:
        return 0.0
    return 2 * len(ta & tb) / (len(ta) + len(tb))


def decide_rephrase(
    lexical: float, cue: bool, semantic: float | None, t: Thresholds = CALIBRATED
) -> bool:
    if lexical >= t.lexical_certain:
        return True
    if semantic is None:
        # Trigram overlap alone cannot tell a restatement from a new question on the same topic
        # (bench/intent: the near-questions overlap more): without the model, only a cue counts.
        return cue and lexical >= t.lexical_with_cue
    return semantic >= (t.semantic_with_cue if cue else t.semantic)


def is_new_question(asked: str, answer: str, new: str, t: Thresholds = CALIBRATED) -> bool:
    """The new turn builds on the answer ("also", "what about…", a word the earlier question did
    not have) or asks the earlier question about something else: not a restatement, however
    similar (bench/intent)."""
    follow = set(FOLLOW_UP_RE.findall(normal(new))) - set(FOLLOW_UP_RE.findall(normal(asked)))
    return bool(follow) or swapped(asked, answer, new, t.swap_kept)


def scan(
    turns: list[Turn],
    *,
    resent: bool = False,
    semantic: bool = True,
    t: Thresholds = CALIBRATED,
    new_questions: bool = True,
) -> Scan:
    """The request-path decision. `resent`: the same conversation was sent within the window.
    With `semantic`, a rephrase the words leave open is left `undecided` for the model.
    `new_questions`: a turn that asks something new is settled as no rephrase, without the model
    (off only to measure what that test adds)."""
    if resent:
        return Scan(Signal.REGENERATE)
    exchange = last_exchange(turns)
    if exchange is None:
        return Scan(None)
    asked, answer, new = (turns[i].text for i in exchange)
    at = exchange[1]
    if is_clarifying(answer):
        return Scan(Signal.CLARIFICATION, answer_at=at)
    if is_correction(new):
        return Scan(Signal.CORRECTION, answer_at=at)
    cue = REPHRASE_RE.search(normal(new)) is not None
    lexical = lexical_similarity(asked, new)
    if new_questions and not cue and is_new_question(asked, answer, new, t):
        return Scan(None, lexical=lexical, answer_at=at, new_question=True)
    if lexical >= t.lexical_certain:
        return Scan(Signal.REPHRASE, lexical=lexical, cue=cue, answer_at=at)
    if semantic:
        return Scan(None, undecided=(asked, new), lexical=lexical, cue=cue, answer_at=at)
    found = decide_rephrase(lexical, cue, None, t)
    return Scan(Signal.REPHRASE if found else None, lexical=lexical, cue=cue, answer_at=at)
