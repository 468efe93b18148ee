"""Detectors for identifiers with letters in them: email addresses, IBANs, IPv6 addresses, and
the patterns and terms a user declares. Digit-only identifiers live in `numeric`, credentials in
`secrets`. Each detector starts from something cheap to find (an "@", two colons, two capitals
and two digits) and does the expensive checks only there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

from turnout.privacy.findings import Finding
from turnout.privacy.validators import IBAN_LENGTHS, iban_valid, ipv6_valid

# An address is found from its "@" outwards: far cheaper than trying a match at every letter.
# The local part is matched on the reversed text before the "@", so each "@" costs at most 64
# characters of work whatever the text around it. RFC 5322 allows more characters in a local
# part; these are the ones addresses use.
_LOCAL_REVERSED = re.compile(r"[A-Za-z0-9_%+.\-]{1,64}")
_DOMAIN = re.compile(r"(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w\-]|\.[^\W_])")

# Starts with a plain class (no lookbehind) so the engine can skip ahead fast; the character
# before is checked in Python.
_IBAN = re.compile(r"[A-Z][A-Z][0-9][0-9](?:[ ]?[A-Z0-9]){11,31}")
_WORDISH = re.compile(r"[\w\-]")

# IPv6 is found from a colon that has another within four hex digits, then widened both ways.
_IPV6_TRIGGER = re.compile(r":(?=[0-9A-Fa-f]{0,4}:)")
_IPV6_LEFT = re.compile(r"[0-9A-Fa-f:]*$")
_IPV6_RIGHT = re.compile(
    r":(?:[0-9A-Fa-f]{0,4}:)*(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9.])|[0-9A-Fa-f]{1,4})?"
)
_IPV6_AFTER = re.compile(r"[\w:]|\.\w")


def find_emails(text: str) -> Iterator[Finding]:
    at = text.find("@")
    while at != -1:
        found = None
        local = _LOCAL_REVERSED.match(text[max(0, at - 64) : at][::-1])
        if local:
            name = local.group()[::-1].lstrip(".")
            domain = _DOMAIN.match(text, at + 1)
            if domain and name and not name.endswith(".") and ".." not in name:
                found = Finding("email", at - len(name), domain.end(), name + "@" + domain.group())
        if found:
            yield found
            at = text.find("@", found.end)
        else:
            at = text.find("@", at + 1)


def find_ibans(text: str) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        if m.start() and _WORDISH.match(text, m.start() - 1):
            continue
        # The pattern may run on into the next word ("… 3000 EUR"); the country's length says
        # where the IBAN ends, so take exactly that many characters.
        length = IBAN_LENGTHS.get(m.group()[:2])
        if length is None:
            continue
        end, taken = m.start(), 0
        while taken < length and end < m.end():
            taken += text[end] != " "
            end += 1
        glued = end < len(text) and text[end].isalnum() and text[end - 1] != " "
        if taken == length and not glued and iban_valid(text[m.start() : end].replace(" ", "")):
            yield Finding("iban", m.start(), end, text[m.start() : end])


def find_ipv6(text: str) -> Iterator[Finding]:
    if text.count(":") < 2:
        return
    pos = 0
    while trigger := _IPV6_TRIGGER.search(text, pos):
        left = _IPV6_LEFT.search(text, max(0, trigger.start() - 40), trigger.start())
        start = left.start() if left else trigger.start()
        right = _IPV6_RIGHT.match(text, trigger.start())
        end = right.end() if right else trigger.end()
        pos = end
        value = text[start:end]
        if (start and _WORDISH.match(text, start - 1)) or _IPV6_AFTER.match(text, end):
            continue
        if value not in ("::", "::1") and ipv6_valid(value):
            yield Finding("ip_address", start, end, value)


class CustomPatterns:
    """User-declared regexes, each reported as `custom:<name>`."""

    def __init__(self, patterns: Mapping[str, str]) -> None:
        self._compiled: list[tuple[str, re.Pattern[str]]] = []
        for name, pattern in patterns.items():
            try:
                self._compiled.append((f"custom:{name}", re.compile(pattern)))
            except re.error as exc:
                raise ValueError(f"custom pattern {name!r} is not a valid regex: {exc}") from exc

    def find(self, text: str) -> Iterator[Finding]:
        for kind, pattern in self._compiled:
            for m in pattern.finditer(text):
                if m.end() > m.start():
                    yield Finding(kind, m.start(), m.end(), m.group())


class Terms:
    """Declared words and phrases (code names, client names), case-insensitive, whole words."""

    def __init__(self, terms: Sequence[str]) -> None:
        words = sorted({t.strip() for t in terms if t.strip()}, key=len, reverse=True)
        body = "|".join(re.escape(w) for w in words)
        self._pattern = re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE) if words else None

    def find(self, text: str) -> Iterator[Finding]:
        if self._pattern is None:
            return
        for m in self._pattern.finditer(text):
            yield Finding("term", m.start(), m.end(), m.group())
