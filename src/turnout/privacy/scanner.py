"""The sensitivity scan: every detector over a text, overlaps settled, findings in text order."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from turnout.privacy.detectors import CustomPatterns, Terms, find_emails, find_ibans, find_ipv6
from turnout.privacy.findings import Finding
from turnout.privacy.numeric import find_numbers
from turnout.privacy.secrets import find_secrets
from turnout.privacy.texts import map_messages, map_request

BUILTIN_KINDS = ("secret", "payment_card", "iban", "us_ssn", "email", "ip_address", "phone")

# Where two findings overlap, the wider one wins (an IBAN over the Luhn-valid digits inside it);
# of two as wide, the one with the stronger evidence: a checksum or an issuer's prefix beats a
# shape. Declared patterns and terms beat phone; Presidio's extras come last.
_RANK = {kind: i for i, kind in enumerate(BUILTIN_KINDS[:-1])}
_RANK_CUSTOM, _RANK_TERM, _RANK_PHONE, _RANK_OTHER = 10, 11, 12, 13

# System prompts and earlier turns come back with every request of a conversation: long texts
# are remembered, short ones (cheap to scan, rarely repeated) are not.
MEMO_MIN_CHARS = 512

Detector = Callable[[str], Iterable[Finding]]


def _rank(kind: str) -> int:
    if kind in _RANK:
        return _RANK[kind]
    if kind.startswith("custom:"):
        return _RANK_CUSTOM
    return {"term": _RANK_TERM, "phone": _RANK_PHONE}.get(kind, _RANK_OTHER)


class Scanner:
    """Finds sensitive spans in text before it may leave the machine.

    Built once per configuration (patterns are compiled here) and then shared by every request.
    With `memo` > 0 it remembers the findings of that many long texts (oldest forgotten first):
    findings depend only on the text, so a repeated text is never scanned twice.
    """

    def __init__(
        self,
        custom_patterns: Mapping[str, str] | None = None,
        terms: Sequence[str] | None = None,
        use_presidio: bool = False,
        kinds: Collection[str] | None = None,
        memo: int = 0,
    ) -> None:
        enabled = set(BUILTIN_KINDS if kinds is None else kinds)
        unknown = enabled - set(BUILTIN_KINDS)
        if unknown:
            raise ValueError(f"unknown kinds {sorted(unknown)}; known: {list(BUILTIN_KINDS)}")
        self._detectors: list[Detector] = []
        if "secret" in enabled:
            self._detectors.append(find_secrets)
        if enabled & {"payment_card", "us_ssn", "ip_address", "phone"}:
            self._detectors.append(find_numbers)
        if "email" in enabled:
            self._detectors.append(find_emails)
        if "iban" in enabled:
            self._detectors.append(find_ibans)
        if "ip_address" in enabled:
            self._detectors.append(find_ipv6)
        if custom_patterns:
            self._detectors.append(CustomPatterns(custom_patterns).find)
        if terms:
            self._detectors.append(Terms(terms).find)
        if use_presidio:
            from turnout.privacy.presidio import PresidioDetector

            self._detectors.append(PresidioDetector().find)
        self._enabled = frozenset(enabled)
        self._memo_size = memo
        self._memo: dict[str, tuple[Finding, ...]] = {}

    def scan(self, text: str) -> list[Finding]:
        if self._memo_size and len(text) >= MEMO_MIN_CHARS:
            known = self._memo.get(text)
            if known is None:
                known = self._memo[text] = tuple(self._scan(text))
                if len(self._memo) > self._memo_size:
                    with contextlib.suppress(KeyError, RuntimeError):  # another thread evicted
                        del self._memo[next(iter(self._memo))]
            return list(known)
        return self._scan(text)

    def _scan(self, text: str) -> list[Finding]:
        found = [f for detect in self._detectors for f in detect(text) if self._wanted(f.kind)]
        return _settle(found) if len(found) > 1 else found

    def scan_messages(self, messages: list[dict[str, Any]]) -> list[Finding]:
        """Findings in chat messages; offsets are within the text each was found in."""
        found: list[Finding] = []
        map_messages(messages, _collect(self.scan, found))
        return found

    def scan_request(self, body: dict[str, Any]) -> list[Finding]:
        """Findings in a chat or text completion request (`messages` and `prompt`)."""
        found: list[Finding] = []
        map_request(body, _collect(self.scan, found))
        return found

    def _wanted(self, kind: str) -> bool:
        return kind in self._enabled or kind not in BUILTIN_KINDS


def _collect(scan: Callable[[str], list[Finding]], into: list[Finding]) -> Callable[[str], str]:
    def visit(text: str) -> str:
        into.extend(scan(text))
        return text

    return visit


def _settle(found: list[Finding]) -> list[Finding]:
    """Non-overlapping findings in text order: the widest first, then the strongest kind."""
    kept: list[Finding] = []
    for f in sorted(found, key=lambda f: (f.start - f.end, _rank(f.kind), f.start)):
        if not any(f.start < k.end and k.start < f.end for k in kept):
            kept.append(f)
    kept.sort(key=lambda f: f.start)
    return kept
