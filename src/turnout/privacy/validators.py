"""Checksums and number rules that turn a lookalike into an identifier.

A regex finds things shaped like a card number or an IBAN; these checks decide whether one is
real. They are what keeps order numbers, hashes and timestamps out of the findings.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter

# IBAN length per country (SWIFT IBAN registry). A wrong length fails before the checksum.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# (prefix range low, high, allowed lengths) for card issuers (ISO/IEC 7812 IIN ranges).
_CARD_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (300, 305, frozenset(range(14, 20))),  # Diners Club
    (36, 36, frozenset(range(14, 20))),
    (38, 39, frozenset(range(14, 20))),
    (6011, 6011, frozenset(range(16, 20))),  # Discover
    (644, 649, frozenset(range(16, 20))),
    (65, 65, frozenset(range(16, 20))),
    (35, 35, frozenset(range(16, 20))),  # JCB (3528–3589; the whole 35 block is kept)
    (2131, 2131, frozenset({15})),  # JCB, legacy
    (1800, 1800, frozenset({15})),
    (62, 62, frozenset(range(16, 20))),  # UnionPay
    (2200, 2204, frozenset(range(16, 20))),  # Mir
    (5018, 5018, frozenset(range(12, 20))),  # Maestro
    (5020, 5020, frozenset(range(12, 20))),
    (5038, 5038, frozenset(range(12, 20))),
    (56, 58, frozenset(range(12, 20))),
    (6304, 6304, frozenset(range(12, 20))),
    (6390, 6390, frozenset(range(12, 20))),
    (6759, 6759, frozenset(range(12, 20))),
    (6761, 6763, frozenset(range(12, 20))),
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_issuer_known(digits: str) -> bool:
    """Whether the leading digits and the length belong to a card issuer."""
    n = len(digits)
    if digits[0] == "0":  # Maestro 0604 is the one issuer range that starts with a zero
        return digits.startswith("0604") and 12 <= n <= 19
    for low, high, lengths in _CARD_RANGES:
        if n in lengths and low <= int(digits[: len(str(low))]) <= high:
            return True
    return False


def payment_card_valid(digits: str) -> bool:
    return 12 <= len(digits) <= 19 and card_issuer_known(digits) and luhn_valid(digits)


def iban_valid(compact: str) -> bool:
    """`compact` is upper case without spaces: country, check digits, BBAN; ISO 13616 mod-97."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def us_ssn_valid(area: str, group: str, serial: str) -> bool:
    """SSA rules: area not 000, 666 or 9xx (ITINs); group not 00; serial not 0000."""
    if area == "000" or area == "666" or area[0] == "9":
        return False
    return group != "00" and serial != "0000"


def ipv4_valid(text: str) -> bool:
    parts = text.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not part.isdigit() or len(part) > 3 or int(part) > 255:
            return False
        if len(part) > 1 and part[0] == "0":  # leading zeros: not how addresses are written
            return False
    return True


def ipv6_valid(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def shannon_entropy(text: str) -> float:
    """Bits per character of `text` taken as a sample of its own characters."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())
