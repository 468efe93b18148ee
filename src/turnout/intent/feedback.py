"""`POST /v1/feedback`: what a user said about an answer, checked and recorded through `store/`.

A body names the answer by `request_id` (from `x-turnout-request-id`) or a `conversation_id`, and
says `score` (−1 … 1) or `label` (one of LABELS or the caller's own word), with an optional
`comment`. Feedback on a request made with a client key must come with the same key.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from turnout.errors import ApiError
from turnout.store.errors import NoRecordStore, RecordNotFound, StoreError
from turnout.store.feedback import Feedback, FeedbackLog, open_feedback_log
from turnout.store.read import open_reader

LABELS = ("good", "wrong_answer", "misunderstood", "need_clarification")
_LABEL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MAX_COMMENT = 4000
_FIELDS = frozenset({"request_id", "conversation_id", "score", "label", "comment"})


def _bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, code="invalid_feedback", param=param)


def parse_feedback(body: dict[str, Any], key_id: str | None, now: float) -> Feedback:
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _bad(
            f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(_FIELDS))})", unknown[0]
        )
    ids = {}
    for name in ("request_id", "conversation_id"):
        value = body.get(name)
        if value is not None and not (isinstance(value, str) and _ID.fullmatch(value)):
            raise _bad(f"{name} must be an id of 1-128 letters, digits, '_.:-'", name)
        ids[name] = value
    if ids["request_id"] is None and ids["conversation_id"] is None:
        raise _bad("name the answer: request_id (from x-turnout-request-id) or conversation_id")
    score = body.get("score")
    if score is not None:
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
        ):
            raise _bad("score must be a number from -1 to 1", "score")
        if not -1 <= score <= 1:
            raise _bad(f"score must be from -1 to 1, got {score}", "score")
        score = float(score)
    label = body.get("label")
    if label is not None and not (isinstance(label, str) and _LABEL.fullmatch(label)):
        raise _bad(
            f"label must be one of {', '.join(LABELS)} or your own lowercase word "
            "(letters, digits, '_.-', at most 64)",
            "label",
        )
    if score is None and label is None:
        raise _bad("say something: score (-1 to 1) or label")
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise _bad("comment must be a string", "comment")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise _bad(f"comment is longer than {MAX_COMMENT} characters", "comment")
    return Feedback(
        id="fb-" + os.urandom(8).hex(),
        at=now,
        request_id=ids["request_id"],
        conversation_id=ids["conversation_id"],
        score=score,
        label=label,
        comment=comment,
        key_id=key_id,
    )


class FeedbackDesk:
    """Takes feedback for one gateway: checks it, finds the answer, records it off the loop."""

    def __init__(
        self,
        store_url: str,
        *,
        recent_key: Callable[[str], tuple[bool, str | None]] | None = None,
        settle_s: float = 0.5,
    ) -> None:
        """`recent_key(request_id)`: (known, its key id) from answers still in memory."""
        self.store_url = store_url
        self.recent_key = recent_key
        self.settle_s = settle_s  # how long a just-finished request may take to be recorded
        self._log: FeedbackLog | None = None

    async def submit(self, body: dict[str, Any], key_id: str | None) -> dict[str, Any]:
        item = parse_feedback(body, key_id, time.time())
        if item.request_id is not None:
            owner = await self._owner(item.request_id)
            if owner is not None and owner != key_id:
                raise ApiError(
                    403,
                    "feedback on a request must come with the client key that made it",
                    code="feedback_not_allowed",
                )
        await asyncio.to_thread(self._append, item)
        return {"object": "feedback", **item.as_dict(), "key_id": None}

    async def _owner(self, request_id: str) -> str | None:
        """The key id of the request (None: made without a key); 404 when there is none."""
        if self.recent_key is not None:
            known, key = self.recent_key(request_id)
            if known:
                return key
        for wait in (0.0, self.settle_s):  # the writer batches: a new request may be in flight
            await asyncio.sleep(wait)
            found = await asyncio.to_thread(self._lookup, request_id)
            if found is not None:
                return found[1]
        raise ApiError(404, f"no request with id {request_id!r}", code="request_not_found")

    def _lookup(self, request_id: str) -> tuple[str, str | None] | None:
        try:
            with open_reader(self.store_url) as reader:
                record = reader.request(request_id)
        except (NoRecordStore, RecordNotFound):
            return None
        if record["id"] != request_id:
            return None  # a prefix matched; feedback names one request exactly
        return record["id"], record.get("key_id")

    def _append(self, item: Feedback) -> None:
        if self._log is None:
            self._log = open_feedback_log(self.store_url)
        self._log.append(item)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


async def guarded(call: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """A store that cannot take the feedback is the server's problem, said as such."""
    try:
        return await call
    except StoreError as exc:
        raise ApiError(
            503,
            f"feedback could not be recorded: {exc}",
            type="server_error",
            code="store_unavailable",
        ) from None
