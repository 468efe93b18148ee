"""`RecordReader.key_refusals`' tally, shared so both stores name a refusal alike."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def tally(rows: Iterable[tuple[str, int | None, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """(key_id, http_status, decoded events) of rejected requests → key_id, code, requests;
    by key, then code."""
    counts: dict[tuple[str, str], int] = {}
    for key_id, status, events in rows:
        code = next(
            (e.get("attrs", {}).get("code") for e in events if e.get("state") == "rejected"),
            None,
        )
        reason = str(code or status or "unknown")
        counts[(key_id, reason)] = counts.get((key_id, reason), 0) + 1
    return [{"key_id": k, "code": c, "requests": n} for (k, c), n in sorted(counts.items())]
