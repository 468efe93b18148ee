"""Opt-in message content on call spans, in the GenAI conventions' message format.

Off by default (`telemetry.capture_content`). What a span may hold follows the record: with
`store.record_bodies: none` nothing is captured, with `redacted` only the structure (text becomes
its length), and when the privacy scanner runs, what it finds is replaced by placeholders first.
Spans carry the messages as JSON strings: span attributes cannot hold maps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from turnout.privacy.redact import Redactor
from turnout.privacy.scanner import Scanner
from turnout.store.bodies import placeholder


class ContentCapture:
    def __init__(self, record_bodies: str, scanner: Scanner | None = None) -> None:
        if record_bodies == "none":
            raise ValueError("content capture needs store.record_bodies full or redacted")
        self.redacted = record_bodies == "redacted"
        self._scanner = scanner

    @classmethod
    def maybe(
        cls, enabled: bool, record_bodies: str, scanner: Scanner | None
    ) -> ContentCapture | None:
        return cls(record_bodies, scanner) if enabled and record_bodies != "none" else None

    def _text_fn(self) -> Any:
        if self.redacted:
            return placeholder
        if self._scanner is None:
            return str
        redactor = Redactor(self._scanner)  # one per span: a value keeps its placeholder
        return lambda text: redactor.redact_text(text)[0]

    def inputs(self, body: Mapping[str, Any]) -> dict[str, str]:
        text = self._text_fn()
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            messages = [{"role": "user", "parts": [_text_part(text(prompt))]}]
            return {"gen_ai.input.messages": _json(messages)}
        system: list[dict[str, Any]] = []
        messages = []
        for m in body.get("messages") or ():
            if not isinstance(m, dict):
                continue
            role = m.get("role") if isinstance(m.get("role"), str) else "user"
            parts = _parts(m, text)
            if role in ("system", "developer") and not system and not messages:
                system = parts  # instructions ahead of the conversation
            else:
                messages.append({"role": role, "parts": parts})
        out = {"gen_ai.input.messages": _json(messages)}
        if system:
            out["gen_ai.system_instructions"] = _json(system)
        return out

    def outputs(self, message: Any, finish: str | None) -> dict[str, str]:
        text = self._text_fn()
        if isinstance(message, str):
            parts = [_text_part(text(message))]
        elif isinstance(message, Mapping):
            parts = _parts(message, text)
        else:
            parts = []
        out = {"role": "assistant", "parts": parts, "finish_reason": finish or "error"}
        return {"gen_ai.output.messages": _json([out])}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _text_part(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


def _parts(message: Mapping[str, Any], text: Any) -> list[dict[str, Any]]:
    """One OpenAI message as the conventions' parts: text, tool calls, a tool's response."""
    content = message.get("content")
    parts: list[dict[str, Any]] = []
    if message.get("role") == "tool":
        response = content if isinstance(content, str) else _joined(content)
        part = {"type": "tool_call_response", "response": text(response)}
        if isinstance(message.get("tool_call_id"), str):
            part["id"] = message["tool_call_id"]
        return [part]
    if isinstance(content, str):
        parts.append(_text_part(text(content)))
    elif isinstance(content, list):
        parts.extend(_text_part(text(t)) for t in _texts(content))
    for call in message.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        args = fn.get("arguments")
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": fn.get("name"),
                "arguments": text(args) if isinstance(args, str) else None,
            }
        )
    return parts


def _texts(content: list[Any]) -> list[str]:
    return [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _joined(content: Any) -> str:
    return "".join(_texts(content)) if isinstance(content, list) else ""
