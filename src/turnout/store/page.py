"""A page of the record for browsing: filters, and a keyset cursor instead of an offset.

An offset reads and throws away every row before the page; a cursor (`started`, `id` of the
last row shown) lets the index start where the previous page stopped, on any size of record.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """What a page of requests is narrowed to; None: any."""

    outcome: str | None = None
    model: str | None = None
    deployment: str | None = None  # any attempt went to it
    key_id: str | None = None
    tenant: str | None = None
    wire: str | None = None
    intent: str | None = None  # a detected intent signal (rephrase, correction, …)
    since: float | None = None  # started at or after (epoch seconds)
    until: float | None = None  # started before

    def active(self) -> dict[str, str | float]:
        """The filters set, by name."""
        out: dict[str, str | float] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value != "":
                out[f.name] = value
        return out
