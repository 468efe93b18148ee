"""One run as one row of the record, built so that no run can make its row unwritable.

What a run holds comes partly from clients and upstreams: a body nested deeper than orjson
writes (254 levels), an integer past 64 bits (a `max_tokens` of 2**64-1 doubled by a truncation
retry), text with lone surrogates. The row keeps what it can and marks the rest:
- integer columns are clamped to SQLite's int64 range;
- inside JSON, an integer orjson cannot write becomes its decimal text (exact), a subtree deeper
  than `MAX_DEPTH` and a value of an unknown type become `{"unrecordable": reason}`;
- a run whose row cannot be built at all is stored bare (`bare_row`): its identity, outcome and
  states, with the reason in `error`.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson

from turnout.lifecycle.run import Run
from turnout.store.bodies import placeholder, scrub_attrs, scrub_error, shape_bodies, token

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1
MAX_DEPTH = 200  # orjson stops at 254; the salvage keeps a margin for the record's own nesting
MAX_NAME = 256  # model names and ids in a bare row


def marker(reason: str) -> dict[str, str]:
    return {"unrecordable": reason}


def row_of(run: Run, record_bodies: str) -> tuple[Any, ...]:
    """The row for `run`; never raises (a run no path foresaw is stored bare)."""
    try:
        return _row(run, record_bodies)
    except Exception as exc:  # one run's oddity must not cost the batch
        return bare_row(run, record_bodies, exc)


def _row(run: Run, mode: str) -> tuple[Any, ...]:
    request_body, response_body = shape_bodies(run.request_body, run.response_body, mode)
    outcome = run.outcome.value if run.outcome else f"unfinished:{run.state.value}"
    if mode == "full":
        events = [e.as_dict() for e in run.events]
        attempts = [a.as_dict() for a in run.attempts]
        model = run.model
    else:
        events = [_scrubbed_event(e.as_dict(), mode) for e in run.events]
        attempts = [_scrubbed_attempt(a.as_dict()) for a in run.attempts]
        model = token(run.model)
    return (
        run.id,
        run.started,
        _real(run.ended),
        model,
        run.operation,
        int(run.stream),
        outcome,
        _int(run.http_status),
        _json(run.deployments),
        len(run.attempts),
        _int(run.prompt_tokens),
        _int(run.completion_tokens),
        _real(run.cost_usd) or 0.0,
        _ms(run.ttft_s),
        _ms(run.latency_s),
        scrub_error(run.error, mode),
        _json(events),
        _json(attempts),
        _json(request_body),
        _json(response_body),
        _json(run.migration or None),
        _text(run.wire),
        _text(run.key_id) if run.key_id is not None else None,
        _text(run.tenant) if run.tenant is not None else None,
        _json(run.attrs or None),
    )


def bare_row(run: Run, record_bodies: str, exc: BaseException) -> tuple[Any, ...]:
    """What is surely writable of a run: who, when, how it ended, its states; no bodies."""
    reason = type(exc).__name__ if record_bodies != "full" else _describe(exc)
    bodies = None if record_bodies == "none" else _json(marker(reason))
    states = [_bare_event(e) for e in getattr(run, "events", ())]
    outcome = run.outcome.value if run.outcome else f"unfinished:{run.state.value}"
    return (
        _text(run.id),
        _real(run.started) or time.time(),
        _real(run.ended),
        _text(token(run.model) if record_bodies != "full" else run.model),
        _text(run.operation),
        int(bool(run.stream)),
        outcome,
        _int(run.http_status) if isinstance(run.http_status, int) else None,
        _json([_text(d) for d in run.deployments]),
        len(run.attempts),
        0,
        0,
        0.0,
        None,
        None,
        f"unrecordable: {reason}",
        _json(states),
        "[]",
        bodies,
        bodies,
        None,
        _text(getattr(run, "wire", "")),
        None,
        None,
        None,
    )


def _bare_event(e: Any) -> dict[str, Any]:
    return {"state": e.state.value, "at": _real(e.at) or 0.0}


def _scrubbed_event(event: dict[str, Any], mode: str) -> dict[str, Any]:
    if "attrs" in event:
        event["attrs"] = scrub_attrs(event["attrs"], mode)
    return event


def _scrubbed_attempt(attempt: dict[str, Any]) -> dict[str, Any]:
    # `error` is a failure class or a validation kind; `finish_reason` is the upstream's word.
    for key in ("error", "finish_reason"):
        if key in attempt:
            attempt[key] = token(attempt[key])
    return attempt


def _int(value: int | None) -> int | None:
    if value is None or INT64_MIN <= value <= INT64_MAX:
        return value
    return INT64_MAX if value > 0 else INT64_MIN


def _real(value: float | None) -> float | None:
    # SQLite stores NaN as NULL, which a NOT NULL column refuses.
    return None if value is None or math.isnan(value) else float(value)


def _ms(seconds: float | None) -> float | None:
    seconds = _real(seconds)
    return None if seconds is None else round(seconds * 1000, 3)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    text = text[:MAX_NAME] if len(text) > MAX_NAME else text
    return text.encode("utf-8", "replace").decode("utf-8")


def _json(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        pass
    try:
        return orjson.dumps(salvage(value)).decode()
    except (orjson.JSONEncodeError, TypeError, RecursionError) as exc:
        return orjson.dumps(marker(_describe(exc))).decode()


def salvage(value: Any, depth: int = 0) -> Any:
    """`value` with every part orjson cannot write replaced; the rest kept as it was."""
    if depth >= MAX_DEPTH:
        return marker(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        return {_key(k): salvage(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [salvage(v, depth + 1) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= UINT64_MAX else str(value)
    return marker(f"a {type(value).__name__}")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key.encode("utf-8", "replace").decode("utf-8")
    return placeholder(str(key)) if not isinstance(key, int | float | bool) else str(key)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
