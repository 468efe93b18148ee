"""What of a request's bodies the record keeps: all, their shape without the text, or nothing."""

from __future__ import annotations

from typing import Any


def shape_bodies(request: Any, response: Any, mode: str) -> tuple[Any, Any]:
    if mode == "full":
        return request, response
    if mode == "none":
        return None, None
    return redact(request), redact(response)


def redact(value: Any) -> Any:
    """Keep structure, roles, names, numbers and booleans; replace free text with its length."""
    if isinstance(value, dict):
        return {k: value[k] if k in _KEEP else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return f"[redacted: {len(value)} chars]"
    return value


# Fields that say what a request is, not what it says.
_KEEP = frozenset(
    {"role", "model", "type", "name", "finish_reason", "object", "id", "tool_call_id", "stop"}
)
