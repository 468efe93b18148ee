"""What an upstream's error response means, from its status and its own words.

Providers say "the prompt does not fit" in different ways; turnout calls all of them
`context_exceeded`, so a request can go to a deployment with a larger window instead of failing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from turnout.backends.base import Failure

# Codes and types that mean the context window is too small (OpenAI, llama.cpp server).
_CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
# Messages: vLLM ("maximum context length"), Anthropic ("prompt is too long"), llama.cpp
# ("exceeds the available context size"), OpenAI-compatible servers that send no code.
_CONTEXT_WORDS = re.compile(
    r"maximum context length|context length exceeded|prompt is too long"
    r"|exceeds the available context size|context window|too many tokens in the prompt",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Classified:
    failure: Failure
    code: str | None = None  # the upstream's own error code, kept for the client
    param: str | None = None


def classify_status(status: int) -> Failure:
    if status == 429:
        return Failure.RATE_LIMITED
    if status in (503, 529):
        return Failure.OVERLOADED
    if status in (408, 504):
        return Failure.TIMEOUT
    if status >= 500:
        return Failure.SERVER_ERROR
    return Failure.CLIENT_ERROR


def _short(value: Any) -> str | None:
    return value[:64] if isinstance(value, str) and value else None


def classify(status: int, raw: bytes) -> Classified:
    """The failure class of an error response, with the upstream's `code` and `param`."""
    failure = classify_status(status)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        err = body if isinstance(body, dict) else {}  # vLLM puts the fields at the top level
    code, kind = _short(err.get("code")), _short(err.get("type"))
    message = err.get("message") if isinstance(err.get("message"), str) else ""
    says = code in _CONTEXT_CODES or kind in _CONTEXT_CODES or _CONTEXT_WORDS.search(message)
    if failure is Failure.CLIENT_ERROR and status in (400, 413, 422) and says:
        param = _short(err.get("param")) or "messages"
        return Classified(Failure.CONTEXT_EXCEEDED, code or "context_length_exceeded", param)
    if status == 529 or kind == "overloaded_error":
        failure = Failure.OVERLOADED
    return Classified(failure, code, _short(err.get("param")))
