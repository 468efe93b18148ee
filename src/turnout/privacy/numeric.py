"""Numbers that identify someone: payment cards, US SSNs, IPv4 addresses and phone numbers.

One regex pass finds every run of digits with the separators people write numbers with; each
run is then classified once, in order of how strongly it can be checked: a card (issuer range and
Luhn), an SSN (its pattern and the SSA rules), an IPv4 address (octet ranges), and last a phone
number, the only kind with no checksum, so it leans on shape and on the words just before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from turnout.privacy.findings import Finding
from turnout.privacy.validators import ipv4_valid, payment_card_valid, us_ssn_valid

# Written to start with a plain character class and with possessive quantifiers: that lets the
# regex engine skip through text at C speed (a leading lookbehind or atomic group would not), so
# the check for what comes before a run is done in `find_numbers`.
_RUN = re.compile(
    r"""
    [+(0-9](?:(?<=[0-9])|(?<=\+)[ ]?[0-9]|(?<=\()\+?[0-9])   # "+", "(" or a digit, then digits
    [0-9]*+
    (?:(?:[ ]?\([0-9]{1,5}\)[ ]?|\)[ .\-]?|[ .\-]{1,2}|/(?=[0-9]))[0-9]+)*+   # separated groups
    (?P<ext>[ ]?(?:x|ext\.?)[ ]?[0-9]{1,6})?+                  # a phone extension
    (?![\w@]|\.\w)
    """,
    re.VERBOSE,
)
_BEFORE_RUN = re.compile(r"[\w+\-.(/@]")  # a run right after one of these is part of a token
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
_THOUSANDS = re.compile(r"\d{1,3}(?:([ .,])\d{3})(?:\1\d{3})*")

# Words just before a number that say what it is; the nearest one decides.
_CONTEXT = re.compile(
    r"""(?ix)
    (?P<neg>\b(?:order|invoice|inv|tracking|track|shipment|parcel|package|ref|reference|ticket
        |case|id|no|nr|num|account|acct|sku|serial|s/n|transaction|txn|confirmation|booking
        |reservation|policy|claim|member|isbn|issn|build|version|ver|release|patch|commit|po
        |lot|batch|item|part|product|model|zip|postal|postcode|code|pin|otp|amount|total|price
        |balance|usd|eur|gbp|\$|€|£)\b|\#)
    |(?P<ssn>\b(?:ssn|social\ security|soc\.?\ sec|ss\#))
    |(?P<pos>\b(?:phone|tel|telephone|call|calling|mobile|cell|cellphone|fax|whatsapp|sms|text
        |ring|dial|reach|contact|hotline|landline|number\ is|my\ number|telefon|telefonnummer
        |handy|mobil|rufnummer|t[ée]l[ée]phone|t[ée]l|portable|appelez|tel[ée]fono|m[óo]vil
        |llamar|cellulare|chiamare|telefoon|mobiel|bel|telefone|celular|ligar|contato)\b
        |電話|携帯|☎|📞)
    """
)
_CONTEXT_WINDOW = 32
_MIN_RUN = 7  # "1.1.1.1" is the shortest identifier here


def _context(text: str, start: int) -> str | None:
    """'neg', 'pos' or 'ssn': the group of the keyword nearest before `start`, if any."""
    found = _CONTEXT.findall(text, max(0, start - _CONTEXT_WINDOW), start)
    if not found:
        return None
    neg, ssn, _pos = found[-1]
    return "neg" if neg else "ssn" if ssn else "pos"


def find_numbers(text: str) -> Iterator[Finding]:
    for m in _RUN.finditer(text):
        start = m.start()
        if m.end() - start < _MIN_RUN or (start and _BEFORE_RUN.match(text, start - 1)):
            continue
        core = text[start : m.start("ext")] if m.group("ext") else m.group()
        digits = _NON_DIGIT.sub("", core)
        kind = _classify(core, digits, text, m.start())
        if kind == "phone":
            yield Finding("phone", m.start(), m.end(), m.group())
        elif kind == "ip_address":
            address = core.partition("/")[0]
            yield Finding(kind, m.start(), m.start() + len(address), address)
        elif kind is not None:
            yield Finding(kind, m.start(), m.start() + len(core), core)


def _classify(core: str, digits: str, text: str, start: int) -> str | None:
    n = len(digits)
    if 12 <= n <= 19 and _CARD_SHAPE.fullmatch(core) and payment_card_valid(digits):
        return "payment_card"
    if n == 9 and (ssn := _SSN.fullmatch(core)) and us_ssn_valid(ssn[1], ssn[3], ssn[4]):
        return "us_ssn"
    if "." in core and (ip := _IPV4.fullmatch(core)):
        return "ip_address" if _ipv4_identifies(ip[1], text, start) else None
    context = _context(text, start)
    if context == "ssn" and n == 9 and us_ssn_valid(digits[:3], digits[3:5], digits[5:]):
        return "us_ssn"
    return "phone" if _is_phone(core, digits, context) else None


def _ipv4_identifies(core: str, text: str, start: int) -> bool:
    if not ipv4_valid(core):
        return False
    # Unspecified, loopback and netmasks name no one; "version 1.2.0.0" is not an address.
    if core == "0.0.0.0" or core.startswith(("127.", "255.")):
        return False
    return _context(text, start) != "neg"


def _is_phone(core: str, digits: str, context: str | None) -> bool:
    n = len(digits)
    if not 7 <= n <= 15 or _DATE.fullmatch(core):
        return False
    if core[0] == "+" or core.startswith("(+"):
        return n >= 8  # E.164: a country code and a subscriber number, at most 15 digits
    if context == "neg":
        return False
    if context == "pos":
        return True
    # No word says what it is: accept only the shapes that phone numbers have and counts lack.
    if _NANP.fullmatch(core):
        return True
    if digits[0] == "0" and 9 <= n <= 12:  # a national number with its trunk prefix
        separated = len(core) > n
        if separated:
            return not _THOUSANDS.fullmatch(core)
        return digits[1] != "0" and n in (10, 11)
    return False
