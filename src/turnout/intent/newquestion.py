"""A new question on the same topic, told apart from a restatement by its words alone.

A restatement rewords how it asks and keeps what it asks about ("Which city is Australia's
capital?"); a new question keeps how it asks and swaps what it is about ("What's the capital of
New Zealand?"). MiniLM and trigram overlap both score the second higher (bench/intent), so the
scan settles it before the model is asked: the new turn opens like the earlier one, keeps most
of its words around one replaced span, and that span brings a word the conversation has not
used. Words match on a shared prefix, so inflections ("boil", "boils") count as the same word.
"""

from __future__ import annotations

import unicodedata
from difflib import SequenceMatcher

_STEM = 4  # characters two words must share at the start to count as one word
_RESPELT = 0.6  # a replaced span this close, character for character, is the same words retyped


def words(text: str) -> list[tuple[str, bool]]:
    """Lowercased words, each with whether it carries content: four letters or more, or an
    acronym ("API"), which short function words ("the", "de", "ha") are not."""
    clean = "".join(c if c.isalnum() else " " for c in unicodedata.normalize("NFC", text))
    return [(w.lower(), len(w) >= _STEM or (len(w) > 1 and w.isupper())) for w in clean.split()]


def same_word(a: str, b: str) -> bool:
    if a == b:
        return True
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n >= _STEM and n >= 0.6 * min(len(a), len(b))


class _Vocabulary:
    """The conversation's words, looked up by their first letters (an answer can be long)."""

    def __init__(self, *texts: str) -> None:
        self.exact: set[str] = set()
        self.by_stem: dict[str, list[str]] = {}
        for text in texts:
            for w, _ in words(text):
                self.exact.add(w)
                if len(w) >= _STEM:
                    self.by_stem.setdefault(w[:_STEM], []).append(w)

    def __contains__(self, word: str) -> bool:
        if word in self.exact:
            return True
        return any(same_word(word, w) for w in self.by_stem.get(word[:_STEM], ()))


def swapped(asked: str, answer: str, new: str, kept: float) -> bool:
    """`new` is `asked` with what it asks about replaced: the same opening word, at least `kept`
    of the earlier words unchanged around one span, and a content word in the new span that
    neither the question nor the answer used."""
    a, n = words(asked), words(new)
    shorter = min(len(a), len(n))
    head = 0
    while head < shorter and same_word(a[head][0], n[head][0]):
        head += 1
    tail = 0
    while tail < shorter - head and same_word(a[-1 - tail][0], n[-1 - tail][0]):
        tail += 1
    removed, inserted = a[head : len(a) - tail], n[head : len(n) - tail]
    if head == 0 or not removed or not inserted or (head + tail) < kept * len(a):
        return False
    if not any(content for _, content in removed):
        return False  # only small words changed: "how many are" -> "what is the"
    gone, came = " ".join(w for w, _ in removed), " ".join(w for w, _ in inserted)
    if SequenceMatcher(None, gone, came).ratio() >= _RESPELT:
        return False  # a typo fixed, a word re-inflected
    seen = _Vocabulary(asked, answer)
    return any(content and w not in seen for w, content in inserted)
