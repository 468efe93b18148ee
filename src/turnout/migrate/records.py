"""The recorded requests a migration replays: chosen from the record, with what they answered."""

from __future__ import annotations

import datetime as dt
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from turnout.errors import TurnoutError
from turnout.store.errors import StoreError
from turnout.store.read import open_reader


class SelectionError(TurnoutError, ValueError):
    """The requested sample cannot be drawn; the message says what was wrong."""


@dataclass(slots=True)
class Answer:
    """What one model said to one request, and what it cost."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    latency_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tool_calls": self.tool_calls,
            "finish_reason": self.finish_reason,
            "latency_s": self.latency_s,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        return cls(**data)

    @classmethod
    def from_body(cls, body: Any) -> Answer:
        """From a completion body, or the assistant message a streamed request records."""
        if not isinstance(body, dict):
            return cls(error="no response recorded")
        message: dict[str, Any] = body
        finish = None
        if "choices" in body:
            choice = (body.get("choices") or [{}])[0]
            choice = choice if isinstance(choice, dict) else {}
            finish = choice.get("finish_reason")
            if "text" in choice:
                return cls(text=str(choice.get("text") or ""), finish_reason=finish)
            inner = choice.get("message")
            message = inner if isinstance(inner, dict) else {}
        calls = message.get("tool_calls")
        return cls(
            text=str(message.get("content") or ""),
            tool_calls=[c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else [],
            finish_reason=finish,
        )


@dataclass(slots=True)
class Recorded:
    """One recorded request: its body as the client sent it, and the answer it got."""

    id: str
    started: float
    model: str  # the logical model (the route)
    deployment: str  # the deployment that answered
    operation: str  # chat | text_completion
    body: dict[str, Any]
    answer: Answer
    # The lifecycle may retry a truncated answer with a larger max_tokens: the recorded answer
    # then came from that budget, and a faithful replay grants it too.
    final_max_tokens: int | None = None

    @property
    def category(self) -> str:
        """The request's kind: the client's `metadata.category` if given, else its shape."""
        meta = self.body.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("category"), str):
            return str(meta["category"])
        if self.operation != "chat":
            return "completion"
        if self.body.get("tools"):
            return "tools"
        fmt = self.body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
            return "json"
        messages = self.body.get("messages") or []
        if any(isinstance(m, dict) and m.get("role") == "tool" for m in messages):
            return "tool-results"
        users = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user")
        return "multi-turn" if users > 1 else "chat"


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """'30m', '2h', '7d' (ago), an ISO date or time (UTC unless it says), or a Unix timestamp."""
    now = time.time() if now is None else now
    value = text.strip()
    if m := _RELATIVE.match(value):
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SelectionError(
            f"--since {text!r}: expected a duration ago (30m, 2h, 7d), an ISO date or time, "
            "or a Unix timestamp"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _redacted(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith("[redacted:")
    if isinstance(value, dict):
        return any(_redacted(v) for v in value.values())
    if isinstance(value, list):
        return any(_redacted(v) for v in value)
    return False


def _final_budget(body: dict[str, Any], attempts: list[Any]) -> int | None:
    done = [a for a in attempts if isinstance(a, dict) and a.get("ok")]
    if not done or done[-1].get("finish_reason") != "length":
        return None
    used = int(done[-1].get("completion_tokens") or 0)
    asked = body.get("max_tokens") or body.get("max_completion_tokens")
    return used if isinstance(asked, int) and used > asked else None


def _final_finish(attempts: list[Any]) -> str | None:
    done = [a for a in attempts if isinstance(a, dict) and a.get("ok")]
    return done[-1].get("finish_reason") if done else None


def as_chat(body: dict[str, Any], wire: str | None) -> dict[str, Any]:
    """A recorded body in the shape replay sends: Messages bodies are kept as the client sent
    them, so they are mapped onto chat completions the way the edge maps them."""
    if wire != "messages":
        return body
    from turnout.wire.messages import check

    chat, _ = check(body)
    return {**chat, "model": body.get("model")}


def select(
    url: str,
    *,
    models: tuple[str, ...] = (),
    deployments: tuple[str, ...] = (),
    since: float | None = None,
    outcomes: tuple[str, ...] = ("completed", "truncated"),
    sample: int | None = None,
    seed: int | None = None,
) -> list[Recorded]:
    """Recorded requests served by `models` (logical) or answered by `deployments`, oldest first;
    a uniform random `sample` of them if asked. Requests recorded without bodies are skipped."""
    try:
        with open_reader(url) as reader:
            where = reader.location
            rows = reader.replayable(since=since, outcomes=outcomes)
    except StoreError as exc:  # none there, or not a turnout store
        raise SelectionError(str(exc)) from None
    chosen: list[Recorded] = []
    redacted = 0
    for row in rows:
        answered_by = row["deployments"] or []
        deployment = answered_by[-1] if answered_by else ""
        if not (row["model"] in models or deployment in deployments):
            continue
        body = row["request_body"]
        if not isinstance(body, dict) or _redacted(body):
            redacted += 1
            continue
        body = as_chat(body, row.get("wire"))
        attempts = row["attempt_log"] or []
        answer = Answer.from_body(row["response_body"])
        answer.finish_reason = answer.finish_reason or _final_finish(attempts)
        final = _final_budget(body, attempts)
        chosen.append(
            Recorded(
                row["id"],
                row["started"],
                row["model"],
                deployment,
                row["operation"],
                body,
                answer,
                final,
            )
        )
    if not chosen:
        what = " or ".join(repr(x) for x in (*models, *deployments))
        extra = f" ({redacted} had only redacted bodies: record_bodies: full)" if redacted else ""
        filters = f", outcome {' or '.join(outcomes)}" if outcomes else ""
        filters += (
            f", since {dt.datetime.fromtimestamp(since, dt.UTC):%Y-%m-%d %H:%M}Z"
            if (since is not None)
            else ""
        )
        raise SelectionError(f"no recorded requests for {what} in {where}{filters}{extra}")
    if sample is not None and sample < len(chosen):
        chosen = sorted(random.Random(seed).sample(chosen, sample), key=lambda r: r.started)
    return chosen
