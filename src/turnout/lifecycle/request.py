"""The request as turnout understands it, built once at the edge from whatever wire format came in.

Inside, the body is OpenAI-shaped (chat completions or completions); a wire format that is not
maps onto it at the edge and is rendered back there, so nothing between knows which one it was.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.backends.base import Operation
from turnout.lifecycle.validate import is_structured
from turnout.routing.admission import Caller


@dataclass(slots=True)
class Request:
    operation: Operation
    model: str
    body: dict[str, Any]  # the working body: re-asks and turnout's own limits change it
    stream: bool = False
    wants_usage: bool = False  # a stream's client asked for the usage chunk
    max_tokens: int | None = None  # the client's own limit: a ceiling, never raised
    structured: bool = False  # JSON output or tools: what is cut cannot be accepted
    headers: Mapping[str, str] = field(default_factory=dict)
    wire: str = "chat.completions"  # the format it came in, and goes back out, in
    original: dict[str, Any] = field(default_factory=dict)  # as the client sent it, never changed
    caller: Caller | None = None  # who a verified client key says is asking; None: no key checked

    @classmethod
    def from_openai(
        cls,
        body: dict[str, Any],
        operation: Operation,
        headers: Mapping[str, str] | None = None,
        caller: Caller | None = None,
    ) -> Request:
        """From a chat-completions or completions body already checked at the edge."""
        opts = body.get("stream_options")
        limit = body.get("max_completion_tokens")
        limit = body.get("max_tokens") if limit is None else limit
        return cls(
            operation=operation,
            model=body.get("model") if isinstance(body.get("model"), str) else "",
            body=_working_copy(body),
            stream=body.get("stream") is True,
            wants_usage=isinstance(opts, dict) and bool(opts.get("include_usage")),
            max_tokens=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
            structured=operation is Operation.CHAT and is_structured(body),
            headers=headers or {},
            wire="chat.completions" if operation is Operation.CHAT else "completions",
            original=body,
            caller=caller,
        )


def _working_copy(body: dict[str, Any]) -> dict[str, Any]:
    """A copy the request path may change (re-asks, max_tokens) without touching the client's."""
    out = dict(body)
    if "messages" in out:
        out["messages"] = copy.copy(out["messages"])
    return out
