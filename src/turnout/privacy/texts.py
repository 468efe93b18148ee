"""Where the text is in an OpenAI-style request: message content (a string or a list of parts),
tool call arguments, and the `prompt` of a text completion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TextMap = Callable[[str], str]


def map_messages(messages: list[dict[str, Any]], fn: TextMap) -> list[dict[str, Any]]:
    """A copy of `messages` with every text passed through `fn`; the input is left unchanged."""
    return [_map_message(m, fn) if isinstance(m, dict) else m for m in messages]


def map_request(body: dict[str, Any], fn: TextMap) -> dict[str, Any]:
    out = dict(body)
    if isinstance(body.get("messages"), list):
        out["messages"] = map_messages(body["messages"], fn)
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        out["prompt"] = fn(prompt)
    elif isinstance(prompt, list):
        out["prompt"] = [fn(p) if isinstance(p, str) else p for p in prompt]
    return out


def _map_message(message: dict[str, Any], fn: TextMap) -> dict[str, Any]:
    out = dict(message)
    content = message.get("content")
    if isinstance(content, str):
        out["content"] = fn(content)
    elif isinstance(content, list):
        out["content"] = [_map_part(p, fn) for p in content]
    if isinstance(message.get("tool_calls"), list):
        out["tool_calls"] = [_map_call(c, fn) for c in message["tool_calls"]]
    if isinstance(message.get("function_call"), dict):  # the legacy single function call
        out["function_call"] = _map_function(message["function_call"], fn)
    return out


def _map_part(part: Any, fn: TextMap) -> Any:
    if isinstance(part, dict) and isinstance(part.get("text"), str):
        return {**part, "text": fn(part["text"])}
    return part


def _map_call(call: Any, fn: TextMap) -> Any:
    if isinstance(call, dict) and isinstance(call.get("function"), dict):
        return {**call, "function": _map_function(call["function"], fn)}
    return call


def _map_function(function: dict[str, Any], fn: TextMap) -> dict[str, Any]:
    if isinstance(function.get("arguments"), str):
        return {**function, "arguments": fn(function["arguments"])}
    return function
