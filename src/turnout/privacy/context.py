"""The words just before a number, which say what it is: "order #…", "tel. …", "SSN: …".

The nearest such word decides, and a sentence end clears what came before it. Words are looked
up in sets: a regex alternation of all of them, tried at every position of the window, cost ten
times more.
"""

from __future__ import annotations

import re

WINDOW = 32  # characters before the number that are read

_WORD = re.compile(r"(?i:\bno\.)|[^\W\d_]+|[#$€£☎📞!?;\n]|\.\s+(?=[A-Z])")
_STOPS = frozenset("!?;\n")
_VERSION = frozenset({"ver", "build", "builds", "release", "firmware"})
_NEG = frozenset({
    "order", "invoice", "inv", "tracking", "track", "shipment", "parcel", "package", "fedex",
    "ups", "usps", "dhl", "ref", "reference", "ticket", "case", "id", "nr", "num", "account",
    "acct", "sku", "serial", "transaction", "txn", "confirmation", "booking", "reservation",
    "policy", "claim", "member", "isbn", "issn", "patch", "commit", "po", "lot", "batch", "item",
    "part", "product", "model", "zip", "postal", "postcode", "code", "pin", "otp", "amount",
    "total", "price", "balance", "no.", "#", "$", "€", "£",
})  # fmt: skip
_POS = frozenset({
    "phone", "tel", "telephone", "call", "calling", "mobile", "cell", "cellphone", "fax",
    "whatsapp", "sms", "text", "ring", "dial", "reach", "contact", "hotline", "landline",
    "telefon", "telefonnummer", "handy", "mobil", "rufnummer", "téléphone", "tél", "portable",
    "appelez", "teléfono", "telefono", "móvil", "movil", "llamar", "llámame", "llamame",
    "cellulare", "chiamare", "chiamami", "telefoon", "mobiel", "bel", "telefone", "celular",
    "liga", "ligar", "ligue", "contato", "☎", "📞",
})  # fmt: skip
_POS_PHRASES = frozenset({"number is", "my number"})
_SSN_WORDS = frozenset({"ssn"})
_SSN_PHRASES = frozenset({"social security", "soc sec"})


# The common case is a deciding word right before the number ("order 88213-77", "tel: …"):
# matched on the reversed few characters before it, that costs a third of tokenising the window.
# Only blanks and colons may sit between; anything else (a stop, "no.", "#") takes the long way.
# No phrase ends in a deciding word, so the nearest word alone settles it when it decides.
_NEAREST_REVERSED = re.compile(r"[ \t:]{0,4}([^\W\d_]{1,24})(?![^\W\d_])")
_NEAREST_REACH = 4 + 24 + 1  # the blanks, the word, and the character before it
_DECIDES = {
    **dict.fromkeys(_POS, "pos"), **dict.fromkeys(_SSN_WORDS, "ssn"),
    **dict.fromkeys(_NEG, "neg"), **dict.fromkeys(_VERSION, "ver"),
}  # fmt: skip


def context(text: str, start: int, floor: int = 0) -> str | None:
    """What the words nearest before `start` (and not before `floor`) say the number there is:
    'ver' (a version), 'neg' (an order number, an amount…), 'ssn', 'pos' (a phone), or None."""
    lo = max(floor, start - WINDOW)
    before = text[max(lo, start - _NEAREST_REACH) : start][::-1]
    near = _NEAREST_REVERSED.match(before)
    if near and near.end() < len(before):  # the whole word, and the character before it, seen
        said = _DECIDES.get(near[1][::-1].lower())
        if said is not None:
            return said
    return _walk(_WORD.findall(text, lo, start))


def _walk(words: list[str]) -> str | None:
    for i in range(len(words) - 1, -1, -1):
        word = words[i].lower()
        if word in _STOPS or word[0] == ".":
            return None
        pair = f"{words[i - 1].lower()} {word}" if i else ""
        if pair in _SSN_PHRASES:
            return "ssn"
        if pair in _POS_PHRASES:
            return "pos"
        if word in _VERSION or "version" in word:
            return "ver"
        if word in _NEG:
            return "neg"
        if word in _SSN_WORDS:
            return "ssn"
        if word in _POS or "電話" in word or "携帯" in word:
            return "pos"
    return None


class Context:
    """`context` for one number, looked up only if a rule needs it, and then only once."""

    __slots__ = ("_floor", "_start", "_text", "_value")
    _UNSET = "unset"

    def __init__(self, text: str, start: int, floor: int) -> None:
        self._text, self._start, self._floor = text, start, floor
        self._value: str | None = self._UNSET

    def __call__(self) -> str | None:
        if self._value is self._UNSET:
            self._value = context(self._text, self._start, self._floor)
        return self._value
