"""Which earlier request produced the answer a signal is about, and which requests were resent.

Every answered chat request leaves its conversation's prefix hash; a later request whose
conversation continues that answer finds it here by the same hash, so its signal counts against
the deployment, model, system prompt, route and key that answered, not the one answering now.
Held in memory for the live path (the canary, escalation, the header); the report joins the same
hashes in the record, so attribution survives restarts and spans gateway processes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from turnout.lifecycle.run import Run


@dataclass(frozen=True, slots=True)
class Origin:
    """The request that produced an answer, as far as reports group by."""

    request_id: str
    model: str
    deployment: str | None
    prompt: str | None  # system-prompt fingerprint
    route: str
    key_id: str | None
    at: float  # when the answer was finished
    canary_arm: str | None = None  # old | candidate, when a canary placed it

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}  # type: ignore[attr-defined]


def route_of(run: Run, first: str | None) -> str:
    """How the answer was placed: a canary arm, an escalation, the primary or a fallback."""
    placed = run.migration.get("canary")
    if isinstance(placed, dict):
        return f"canary:{placed.get('arm')}"
    intent = run.attrs.get("intent")
    if isinstance(intent, dict) and intent.get("escalated_to"):
        return "escalated"
    served = served_by(run)
    return "primary" if served is None or served == first else "fallback"


def served_by(run: Run) -> str | None:
    done = next((a for a in reversed(run.attempts) if a.ok), None)
    return done.deployment if done is not None else None


def origin_of(run: Run, prompt: str | None, first: str | None) -> Origin:
    placed = run.migration.get("canary")
    arm = placed.get("arm") if isinstance(placed, dict) else None
    at = run.ended if run.ended is not None else run.started
    route = route_of(run, first)
    return Origin(run.id, run.model, served_by(run), prompt, route, run.key_id, at, arm)


class Answers:
    """Recent answers by the prefix hash of the conversation they continued (bounded, LRU)."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._by_prefix: OrderedDict[str, Origin] = OrderedDict()
        self._ids: OrderedDict[str, Origin] = OrderedDict()

    def add(self, prefix: str, origin: Origin) -> None:
        for table, key in ((self._by_prefix, prefix), (self._ids, origin.request_id)):
            table[key] = origin
            table.move_to_end(key)
            while len(table) > self.size:
                table.popitem(last=False)

    def get(self, prefix: str) -> Origin | None:
        return self._by_prefix.get(prefix)

    def by_id(self, request_id: str) -> Origin | None:
        return self._ids.get(request_id)


def is_regenerate(before: Origin | None, key_id: str | None, now: float, window_s: float) -> bool:
    """The conversation was answered for the same key within the window: it is being resent."""
    return before is not None and before.key_id == key_id and 0 <= now - before.at <= window_s
