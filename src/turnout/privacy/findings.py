"""What a scan reports: a kind and a span, and a summary that never carries the values."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive span of a text: `text[start:end] == value`.

    `value` is left out of `repr` so that a finding logged by accident does not leak it.
    """

    kind: str
    start: int
    end: int
    value: str = field(repr=False)


def summary(findings: Iterable[Finding]) -> dict[str, int]:
    """Kinds and counts, sorted by kind: what the record may keep when bodies are redacted."""
    return dict(sorted(Counter(f.kind for f in findings).items()))
