"""Anthropic's Messages format, outbound: the engine's chat-shaped replies, errors and stream
chunks rendered as Messages objects and events."""

from __future__ import annotations

from typing import Any

import orjson

# Chat finish reasons as Messages stop reasons.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# turnout failure classes (x-turnout-failure) that Anthropic's clients know as 529.
_OVERLOADED = frozenset({"overloaded", "shed"})


def error_body(status: int, message: str, request_id: str | None = None) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    out: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    if request_id is not None:
        out["request_id"] = request_id
    return out


def error_reply(
    status: int, body: dict[str, Any], headers: dict[str, str], request_id: str
) -> tuple[int, dict[str, Any]]:
    """An OpenAI-shaped error reply as Anthropic's: its status (529 when overloaded) and shape."""
    err = body.get("error") if isinstance(body.get("error"), dict) else {}
    message = err.get("message") if isinstance(err.get("message"), str) else "request failed"
    if headers.get("x-turnout-failure") in _OVERLOADED:
        status = 529
    return status, error_body(status, message, request_id)


def _stop(choice: dict[str, Any]) -> tuple[str, str | None]:
    reason = STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn")
    matched = choice.get("stop_reason")  # which stop sequence, where the upstream says so
    if reason == "end_turn" and isinstance(matched, str):
        return "stop_sequence", matched
    return reason, None


def usage(chat_usage: Any) -> dict[str, int]:
    u = chat_usage if isinstance(chat_usage, dict) else {}
    details = u.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    cached = cached if isinstance(cached, int) else 0
    out = {
        "input_tokens": max(0, int(u.get("prompt_tokens") or 0) - cached),
        "output_tokens": int(u.get("completion_tokens") or 0),
    }
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


def _input(arguments: Any) -> Any:
    try:
        return orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return arguments  # not JSON: the client sees exactly what the model said


def message(completion: dict[str, Any], model: str, message_id: str) -> dict[str, Any]:
    """A chat completion as a Messages `message` object."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    if msg.get("content"):
        content.append({"type": "text", "text": msg["content"]})
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") or {}
        content.append(
            {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"),
             "input": _input(fn.get("arguments"))}
        )  # fmt: skip
    reason, matched = _stop(choice)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": matched,
        "usage": usage(completion.get("usage")),
    }


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class MessagesStream:
    """The engine's chat-chunk SSE bytes in, Messages events out; one content block open at once."""

    def __init__(self, model: str, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self.index = -1  # the open content block's index
        self.open: str | None = None  # "text", or "tool:<chat index>"
        self.stop: tuple[str, str | None] = ("end_turn", None)
        self.usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}
        self.ended = False

    def start(self) -> bytes:
        msg = {
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": dict(self.usage),
        }  # fmt: skip
        return sse("message_start", {"message": msg}) + sse("ping", {})

    def feed(self, raw: bytes) -> bytes:
        out = bytearray()
        for event in raw.split(b"\n\n"):
            data = b"\n".join(
                line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")
            )
            if not data:
                continue
            if data == b"[DONE]":
                out += self._finish()
                continue
            chunk = orjson.loads(data)
            if isinstance(chunk, dict) and "error" in chunk:
                out += self._error(chunk["error"])
            elif isinstance(chunk, dict):
                out += self._chunk(chunk)
        return bytes(out)

    def _chunk(self, chunk: dict[str, Any]) -> bytes:
        out = bytearray()
        if chunk.get("usage"):
            self.usage = usage(chunk["usage"])
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out += self._block("text", {"type": "text", "text": ""})
                piece = {"type": "text_delta", "text": delta["content"]}
                out += sse("content_block_delta", {"index": self.index, "delta": piece})
            for call in delta.get("tool_calls") or ():
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self.stop = _stop(choice)
        return bytes(out)

    def _tool_delta(self, call: dict[str, Any]) -> bytes:
        out = bytearray()
        fn = call.get("function") or {}
        key = f"tool:{call.get('index', 0)}"
        if self.open != key:
            block = {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": {}}
            out += self._block(key, block)
        if fn.get("arguments"):
            piece = {"type": "input_json_delta", "partial_json": fn["arguments"]}
            out += sse("content_block_delta", {"index": self.index, "delta": piece})
        return bytes(out)

    def _block(self, key: str, block: dict[str, Any]) -> bytes:
        if self.open == key:
            return b""
        out = self._close()
        self.index += 1
        self.open = key
        return out + sse("content_block_start", {"index": self.index, "content_block": block})

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return sse("content_block_stop", {"index": self.index})

    def _finish(self) -> bytes:
        self.ended = True
        reason, matched = self.stop
        delta = {"stop_reason": reason, "stop_sequence": matched}
        return (
            self._close()
            + sse("message_delta", {"delta": delta, "usage": self.usage})
            + sse("message_stop", {})
        )

    def _error(self, err: Any) -> bytes:
        self.ended = True
        err = err if isinstance(err, dict) else {}
        code = str(err.get("code") or "")
        status = 529 if code.startswith("overloaded") else 429 if "rate_limit" in code else 500
        body = error_body(status, str(err.get("message") or "the stream failed"))
        return sse("error", {"error": body["error"]})
