"""Redaction with restoration: sensitive values go out as placeholders like `[EMAIL_1]` and come
back as the originals, in whole responses and in streams cut at arbitrary points.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from turnout.privacy.findings import Finding
from turnout.privacy.scanner import Scanner
from turnout.privacy.texts import map_messages, map_request

_NOT_LABEL = re.compile(r"[^A-Z0-9]+")


def placeholder_label(kind: str) -> str:
    """`email` → `EMAIL`, `custom:employee-id` → `CUSTOM_EMPLOYEE_ID`."""
    return _NOT_LABEL.sub("_", kind.upper()).strip("_") or "REDACTED"


class Redactor:
    """Replaces findings by placeholders, one conversation at a time.

    Keep one per conversation: the same value always gets the same placeholder, so a model that
    saw `[EMAIL_1]` in turn one still means the same address in turn three. `mapping` (placeholder
    → original) is what a `Restorer` needs, and what to persist to resume the conversation.
    """

    def __init__(self, scanner: Scanner, mapping: Mapping[str, str] | None = None) -> None:
        self._scanner = scanner
        self._mapping: dict[str, str] = dict(mapping or {})
        self._by_value = {value: ph for ph, value in self._mapping.items()}
        self._next: dict[str, int] = {}
        for ph in self._mapping:
            label, _, n = ph[1:-1].rpartition("_")
            if n.isdigit():
                self._next[label] = max(self._next.get(label, 1), int(n) + 1)

    @property
    def mapping(self) -> dict[str, str]:
        return dict(self._mapping)

    def redact_text(self, text: str) -> tuple[str, list[Finding]]:
        findings = self._scanner.scan(text)
        return self.apply(text, findings), findings

    def redact_messages(
        self, messages: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[Finding]]:
        found: list[Finding] = []
        return map_messages(messages, self._redacting(found)), found

    def redact_request(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[Finding]]:
        """A copy of an OpenAI chat or completion request with its sensitive spans replaced."""
        found: list[Finding] = []
        return map_request(body, self._redacting(found)), found

    def apply(self, text: str, findings: list[Finding]) -> str:
        """`text` with each of `findings` (non-overlapping, from a scan of `text`) replaced."""
        if not findings:
            return text
        parts: list[str] = []
        at = 0
        for f in sorted(findings, key=lambda f: f.start):
            parts.append(text[at : f.start])
            parts.append(self._placeholder(f, text))
            at = f.end
        parts.append(text[at:])
        return "".join(parts)

    def restorer(self) -> Restorer:
        return Restorer(self._mapping)

    def _redacting(self, found: list[Finding]) -> Any:
        def redact(text: str) -> str:
            out, findings = self.redact_text(text)
            found.extend(findings)
            return out

        return redact

    def _placeholder(self, finding: Finding, text: str) -> str:
        known = self._by_value.get(finding.value)
        if known is not None:
            return known
        label = placeholder_label(finding.kind)
        n = self._next.get(label, 1)
        while (ph := f"[{label}_{n}]") in text or ph in self._mapping:
            n += 1  # the text already holds that literal: restoring it would change the text
        self._next[label] = n + 1
        self._mapping[ph] = finding.value
        self._by_value[finding.value] = ph
        return ph


class Restorer:
    """Puts the originals back into a response, whole (`restore`) or streamed (`feed`/`flush`).

    A stream may cut a placeholder anywhere (`…[EMA` + `IL_1]…`); `feed` holds back only a tail
    that could still become a placeholder and emits everything else at once.
    """

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._mapping = dict(mapping)
        names = sorted(self._mapping, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, names))) if names else None
        # Every proper prefix of a placeholder: the tails worth holding back.
        self._prefixes = {ph[:i] for ph in names for i in range(1, len(ph))}
        self._pending = ""

    def restore(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._mapping[m.group()], text)

    def feed(self, piece: str) -> str:
        text = self._pending + piece
        cut = text.rfind("[")
        # A placeholder holds no "[" after its first character, so only the tail from the last
        # "[" can be an unfinished one.
        if cut != -1 and text[cut:] in self._prefixes:
            self._pending = text[cut:]
            return self.restore(text[:cut])
        self._pending = ""
        return self.restore(text)

    def flush(self) -> str:
        """The held-back tail: the stream ended, so it was never a placeholder."""
        tail, self._pending = self._pending, ""
        return tail
