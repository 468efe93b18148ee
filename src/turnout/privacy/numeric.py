"""Numbers that identify someone: payment cards, US SSNs, IPv4 addresses and phone numbers.

One regex pass finds every run of digits with the separators people write numbers with; each
run is then classified once, in order of how strongly it can be checked: a card (issuer range and
Luhn), an SSN (its pattern and the SSA rules), an IPv4 address (octet ranges), and last a phone
number, the only kind with no checksum, so it leans on shape and on the words just before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from turnout.privacy.context import Context
from turnout.privacy.findings import Finding
from turnout.privacy.validators import ipv4_valid, payment_card_valid, us_ssn_valid

# Written to start with a plain character class and with possessive quantifiers: that lets the
# regex engine skip through text at C speed (a leading lookbehind or atomic group would not), so
# the check for what comes before a run is done in `find_numbers`.
_RUN = re.compile(
    r"""
    [+(0-9](?=[0-9 ().\-/x]{5})        # at least six more characters that a run is made of
    (?:(?<=[0-9])|(?<=\+)[ ]?[0-9]|(?<=\()\+?[0-9])   # "+", "(" or a digit, then digits
    [0-9]*+
    (?:(?:[ ]?\([0-9]{1,5}\)[ ]?|\)[ .\-]?|[ .\-]{1,2}|/(?=[0-9]))[0-9]+)*+   # separated groups
    (?P<ext>[ ]?(?:x|ext\.?)[ ]?[0-9]{1,6})?+                  # a phone extension
    (?![\w@]|\.\w)
    """,
    re.VERBOSE,
)
_NON_DIGIT = re.compile(r"\D")
# Groups of four (13–19 digits), or the 4-6-5 / 4-6-4 of American Express and Diners Club.
_CARD_SHAPE = re.compile(
    r"\d{4}([ \-]?)\d{4}\1\d{4}(?:\1\d{1,4}(?:\1\d{1,3})?)?|\d{4}([ \-]?)\d{6}\2\d{4,5}"
)
_SSN = re.compile(r"(\d{3})([ \-])(\d{2})\2(\d{4})")
_IPV4 = re.compile(r"(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(?:/\d{1,2})?")  # CIDR suffix allowed
_DATE = re.compile(
    r"(?:\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{2,4})"
    r"(?:[ T]\d{1,2}(?:[.:]\d{2}){0,2})?"
)
_NANP = re.compile(r"(?:\+?1[ .\-]?)?(?:\(\d{3}\)[ ]?|\d{3}([ .\-]))\d{3}(?(1)\1|[ .\-])\d{4}")
_BRAZIL = re.compile(r"(?:\(\d{2}\)|\d{2}) 9?\d{4}-\d{4}")  # the national format: (11) 91234-5678
_THOUSANDS = re.compile(r"\d{1,3}(?:([ .,])\d{3})(?:\1\d{3})*")

_MIN_RUN = 7  # "1.1.1.1" is the shortest identifier here
_MAX_PARTS = 8  # a run with more space-separated parts is a table of numbers, not one identifier


def find_numbers(text: str) -> Iterator[Finding]:
    floor = 0  # a keyword before the previous number speaks about that one, not this one
    for m in _RUN.finditer(text):
        start, previous_end, floor = m.start(), floor, m.end()
        if floor - start < _MIN_RUN:
            continue
        end = m.start("ext")
        if end == -1:
            end = floor
        if text[start] == "(" and text.find(")", start, end) == -1:
            start += 1  # "(123-45-6789)": the parenthesis belongs to the sentence
        # Same test as the regex [\w+\-./] on the character before, at a third of the cost.
        glued = start > 0 and ((before := text[start - 1]).isalnum() or before in "_+-./")
        if not glued:
            core = text[start:end]
            digits = core.replace("-", "")  # most runs are digits and hyphens: no regex needed
            if not digits.isdigit():
                digits = _NON_DIGIT.sub("", core)
            kind = _classify(core, digits, Context(text, start, previous_end))
            if kind is not None:
                yield _finding(kind, text, start, end, floor)
                continue
        if text.find(" ", start, end) != -1:
            yield from _parts(text, start, end, glued)


def _finding(kind: str, text: str, start: int, end: int, ext_end: int) -> Finding:
    if kind == "phone":
        return Finding(kind, start, ext_end, text[start:ext_end])
    if kind == "ip_address":
        end = start + text[start:end].find("/") if "/" in text[start:end] else end
    return Finding(kind, start, end, text[start:end])


def _parts(text: str, start: int, end: int, glued: bool) -> Iterator[Finding]:
    """Addresses and SSNs inside a run that is not one identifier as a whole: "at 435
    192.168.1.7" is one run of digits and spaces; its last part is an address."""
    at = start
    for i, part in enumerate(text[start:end].split(" ", _MAX_PARTS)[:_MAX_PARTS]):
        if part and not (glued and i == 0) and (_IPV4.fullmatch(part) or _SSN.fullmatch(part)):
            kind = _classify(part, _NON_DIGIT.sub("", part), Context(text, at, at))
            if kind in ("ip_address", "us_ssn"):
                yield _finding(kind, text, at, at + len(part), at + len(part))
        at += len(part) + 1


def _classify(core: str, digits: str, context: Context) -> str | None:
    n = len(digits)
    # Unbroken digits after "order", "ref", "FedEx"… are that; grouped ones look like a card.
    if (
        12 <= n <= 19
        and _CARD_SHAPE.fullmatch(core)
        and payment_card_valid(digits)
        and (n < len(core) or context() not in ("neg", "ver"))
    ):
        return "payment_card"
    if n == 9 and (ssn := _SSN.fullmatch(core)) and us_ssn_valid(ssn[1], ssn[3], ssn[4]):
        return "us_ssn"
    if "." in core and (ip := _IPV4.fullmatch(core)):
        return "ip_address" if _ipv4_identifies(ip[1], context) else None
    if n == 9 and context() == "ssn" and us_ssn_valid(digits[:3], digits[3:5], digits[5:]):
        return "us_ssn"
    return "phone" if _is_phone(core, digits, context) else None


def _ipv4_identifies(address: str, context: Context) -> bool:
    # Unspecified, loopback and netmasks name no one; "1.2.0.4" is a version far more often
    # than one of the few addresses whose octets are all single digits.
    nobody = address == "0.0.0.0" or address.startswith(("127.", "255."))
    if nobody or len(address) <= 7 or not ipv4_valid(address):
        return False
    return context() != "ver"


def _is_phone(core: str, digits: str, context: Context) -> bool:
    n = len(digits)
    if not 7 <= n <= 15 or _DATE.fullmatch(core):
        return False
    if "." in core and " " in core:
        return False  # dots and spaces mixed: two numbers side by side ("12:30:04 10.1.2.3")
    if core[0] == "+" or core.startswith("(+"):
        return n >= 8  # E.164: a country code and a subscriber number, at most 15 digits
    said = context()
    if said in ("neg", "ver"):
        return False
    if said == "pos":
        return True
    # No word says what it is: accept only the shapes that phone numbers have and counts lack.
    if _NANP.fullmatch(core) or _BRAZIL.fullmatch(core):
        return True
    if digits.startswith("00") and digits[2] != "0" and 10 <= n <= 15 and len(core) > n:
        return True  # "00" or "001-" dialled from abroad, then a country code
    if digits[0] == "0" and 9 <= n <= 12:  # a national number with its trunk prefix
        separated = len(core) > n
        if separated:
            return not _THOUSANDS.fullmatch(core)
        return digits[1] != "0" and n in (10, 11)
    return False
