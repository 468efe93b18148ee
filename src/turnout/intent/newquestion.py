"""A new question on the same topic, told apart from a restatement by its words alone.

A restatement rewords how it asks and keeps what it asks about ("Which city is Australia's
capital?"); a new question keeps how it asks and swaps what it is about ("What's the capital of
New Zealand?"). MiniLM and trigram overlap both score the second higher (bench/intent), so the
scan settles it before the model is asked: the new turn opens like the earlier one, keeps most
of its words around one replaced span, and that span brings a word the conversation has not
used. Words match on a shared prefix, so inflections ("boil", "boils") count as the same word.
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher

_STEM = 4  # characters two words must share at the start to count as one word
_RESPELT = 0.6  # a replaced span this close, character for character, is the same words retyped


_WORD = re.compile(r"[^\W_]+")  # letters and digits: "Wi-Fi" is two words, "l'Australie" two


def words(text: str) -> list[tuple[str, bool]]:
    """Lowercased words, each with whether it carries content: four letters or more, or an
    acronym ("API"), which short function words ("the", "de", "ha") are not."""
    found = _WORD.findall(unicodedata.normalize("NFC", text))
    return [(w.lower(), len(w) >= _STEM or (len(w) > 1 and w.isupper())) for w in found]


def same_word(a: str, b: str) -> bool:
    if a == b:
        return True
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n >= _STEM and n >= 0.6 * min(len(a), len(b))


def used(word: str, text: str) -> bool:
    """`text` (lowercased) has `word` or, for a long one, a word sharing its stem. Found with
    str.find, so a long answer costs little."""
    stem = word[:_STEM]
    at = text.find(stem)
    while at != -1:
        if at == 0 or not text[at - 1].isalnum():
            found = _WORD.match(text, at)
            other = found.group() if found is not None else ""
            if other == word or (len(word) >= _STEM and same_word(word, other)):
                return True
        at = text.find(stem, at + 1)
    return False


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
    seen = unicodedata.normalize("NFC", f"{asked}\n{answer}").lower()
    return any(content and not used(w, seen) for w, content in inserted)
