"""The words before a number: the shortcut for a deciding word right before it must agree with
reading the whole window, on every shape of text around it."""

import random

from turnout.privacy.context import _WORD, WINDOW, _walk, context

PIECES = [
    "order", "Order", "ORDER", "tel", "Tel", "phone", "ssn", "SSN", "version", "ver", "build",
    "my number", "number is", "social security", "soc sec", "no.", "No.", "#", "$", "call",
    "the", "at", "recorder", "telephones", "x", "é", "téléphone", "電話", "携帯電話", "²",
    "_", "2", "a" * 30, "!", "?", ";", "\n", ". The", ".", ":", " ", "\t", "  ", "-", "(", ")",
]  # fmt: skip
GAPS = ["", " ", "  ", ": ", ":", "\t", " : ", "     ", "-", "#", "(", " # "]


def slow(text: str, start: int, floor: int) -> str | None:
    return _walk(_WORD.findall(text, max(floor, start - WINDOW), start))


def test_shortcut_agrees_with_reading_the_window() -> None:
    rng = random.Random(7)
    checked = 0
    for _ in range(20000):
        words = rng.choices(PIECES, k=rng.randint(0, 6))
        seps = [rng.choice(["", " ", " ", "\t", ":"]) for _ in words]
        prefix = "".join(w + s for w, s in zip(words, seps, strict=True)) + rng.choice(GAPS)
        text = prefix + "5551234"
        start = len(prefix)
        floor = rng.choice([0, 0, 0, rng.randint(0, start)])
        assert context(text, start, floor) == slow(text, start, floor), (text, floor)
        checked += context(text, start, floor) is not None
    assert checked > 5000  # the generator reaches the deciding cases, not only the empty ones
