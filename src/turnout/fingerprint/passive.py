"""Passive monitoring: change detection on live traffic, read from the request record.

Per route (logical model → deployment that answered) it follows three signals with CUSUM:
output length (completion tokens, log scale), refusal rate (needs response bodies in the record)
and validation-failure rate (attempts whose answer failed the lifecycle's checks). It costs no
probe traffic, and it also sees changes that probes miss, but traffic itself changes (another
mix of prompts looks like another model), so a shift here is a lead, not a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from turnout.backends.base import Failure
from turnout.fingerprint.cusum import MeanCusum, RateCusum, Shift
from turnout.fingerprint.refusal import is_refusal
from turnout.fingerprint.settings import PassiveSettings
from turnout.store.errors import NoRecordStore
from turnout.store.read import Cursor, Request, open_reader

_TRANSPORT_FAILURES = frozenset(f.value for f in Failure)
SIGNALS = ("output_length", "refusal_rate", "validation_failure_rate")
PAGE = 1000  # requests read at a time


@dataclass(slots=True)
class RouteShift:
    model: str
    deployment: str
    signal: str
    shift: Shift
    at: float  # when the request that tipped it started
    request_id: str

    def describe(self) -> str:
        s = self.shift
        way = "up" if s.direction > 0 else "down"
        if self.signal == "output_length":
            ref, now = math.expm1(s.reference), math.expm1(s.recent)
            level = f"~{ref:.0f} → ~{now:.0f} completion tokens"
        else:
            level = f"{s.reference:.1%} → {s.recent:.1%}"
        return (
            f"{self.signal} of {self.model} → {self.deployment} shifted {way} ({level}) "
            f"after {s.observations} observations"
        )


@dataclass(slots=True)
class _Route:
    length: MeanCusum
    refusal: RateCusum
    invalid: RateCusum


def _answer_text(response: Any) -> str | None:
    if not isinstance(response, dict):
        return None
    choice = (response.get("choices") or [{}])[0]
    if not isinstance(choice, dict):
        return None
    text = choice.get("text")
    if text is None:
        text = (choice.get("message") or {}).get("content")
    # A redacted record keeps only "[redacted: N chars]": no refusal can be read from it.
    if not isinstance(text, str) or text.startswith("[redacted:"):
        return None
    return text


@dataclass
class PassiveMonitor:
    """Reads the record incrementally; `scan()` returns the shifts found since the last scan."""

    record_url: str
    settings: PassiveSettings = field(default_factory=PassiveSettings)
    _routes: dict[tuple[str, str], _Route] = field(default_factory=dict)
    _cursor: Cursor = (0.0, "")

    def _route(self, model: str, deployment: str) -> _Route:
        key = (model, deployment)
        if key not in self._routes:
            s = self.settings
            self._routes[key] = _Route(
                MeanCusum(warmup=s.warmup, batch=s.batch, h=s.threshold),
                RateCusum(warmup=s.warmup, h=s.rate_threshold),
                RateCusum(warmup=s.warmup, h=s.rate_threshold),
            )
        return self._routes[key]

    def _rows(self) -> Iterator[Request]:
        try:
            reader = open_reader(self.record_url)
        except NoRecordStore:
            return
        with reader:
            # scan() moves the cursor row by row, so each page starts after the last row seen.
            while page := reader.requests_after(self._cursor, PAGE):
                yield from page

    def scan(self) -> list[RouteShift]:
        found: list[RouteShift] = []
        for row in self._rows():
            rid, started, model = row["id"], row["started"], row["model"]
            self._cursor = (started, rid)
            attempts = row["attempt_log"] or []
            for a in attempts:
                route = self._route(model, a["deployment"])
                error = a.get("error")
                answered = a.get("ok") or (error is not None and error not in _TRANSPORT_FAILURES)
                if not answered:
                    continue  # the deployment never answered: nothing about its behaviour
                hit = route.invalid.update(error is not None)
                if hit:
                    found.append(RouteShift(model, a["deployment"], SIGNALS[2], hit, started, rid))
                if a.get("ok"):
                    tokens = int(a.get("completion_tokens") or 0)
                    hit = route.length.update(math.log1p(tokens))
                    if hit:
                        found.append(
                            RouteShift(model, a["deployment"], SIGNALS[0], hit, started, rid)
                        )
            ok = [a for a in attempts if a.get("ok")]
            text = _answer_text(row["response_body"]) if ok else None
            if text is not None:
                route = self._route(model, ok[-1]["deployment"])
                hit = route.refusal.update(is_refusal(text))
                if hit:
                    found.append(
                        RouteShift(model, ok[-1]["deployment"], SIGNALS[1], hit, started, rid)
                    )
        return found
