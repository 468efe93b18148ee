"""Streams: rebuild the answer from its chunks, and say failures the OpenAI way."""

from __future__ import annotations

from typing import Any

import orjson

from turnout.backends.base import Operation, Usage


def error_event(message: str, type: str, code: str | None) -> bytes:
    """The SSE event an OpenAI client raises on; no `[DONE]` follows it."""
    body = {"error": {"message": message, "type": type, "code": code, "param": None}}
    return b"data: " + orjson.dumps(body) + b"\n\n"


class Accumulator:
    """Collects deltas into one message for validation and the record."""

    __slots__ = ("_calls", "_parts", "finish_reason", "operation", "usage")

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self._parts: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage = Usage()

    def add(self, chunk: dict[str, Any]) -> bool:
        """Take one chunk; False for the usage-only chunk, which the client may not want."""
        usage = chunk.get("usage")
        if usage:
            self.usage = Usage.from_body(usage)
        choices = chunk.get("choices") or ()
        for c in choices:
            if c.get("finish_reason"):
                self.finish_reason = c["finish_reason"]
            if self.operation is Operation.COMPLETION:
                if c.get("text"):
                    self._parts.append(c["text"])
                continue
            delta = c.get("delta") or {}
            if delta.get("content"):
                self._parts.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                self._merge_call(call)
        return bool(choices) or not usage

    def _merge_call(self, call: dict[str, Any]) -> None:
        """By index, as OpenAI specifies; a name or id repeated in every chunk counts once."""
        slot = self._calls.setdefault(
            call.get("index", len(self._calls)),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if call.get("id") and not slot["id"]:
            slot["id"] = call["id"]
        fn = call.get("function") or {}
        name = fn.get("name")
        if name and name != slot["function"]["name"]:
            slot["function"]["name"] += name
        if fn.get("arguments"):
            slot["function"]["arguments"] += fn["arguments"]

    @property
    def has_tool_calls(self) -> bool:
        return bool(self._calls)

    def text(self) -> str:
        return "".join(self._parts)

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": self.text() or None}
        if self._calls:
            msg["tool_calls"] = [self._calls[i] for i in sorted(self._calls)]
        return msg


class ToolCallNames:
    """What the client is sent of streamed tool calls follows the spec: id and name once per index.

    Some servers (llama.cpp's) repeat both in every chunk; a client accumulating by index would
    otherwise build `get_weatherget_weather…`.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[int, tuple[bool, bool]] = {}

    def tidy(self, chunk: dict[str, Any]) -> bool:
        """Drop repeated ids and names in place; True when the chunk changed."""
        changed = False
        for c in chunk.get("choices") or ():
            for call in (c.get("delta") or {}).get("tool_calls") or ():
                index = call.get("index", 0)
                had_id, had_name = self._seen.get(index, (False, False))
                fn = call.get("function")
                if call.get("id"):
                    if had_id:
                        del call["id"]
                        call.pop("type", None)
                        changed = True
                    had_id = True
                if isinstance(fn, dict) and fn.get("name"):
                    if had_name:
                        del fn["name"]
                        changed = True
                    had_name = True
                self._seen[index] = (had_id, had_name)
        return changed
