"""The OpenAI wire format, outbound: what an upstream's answer must look like to be used.

An answer that does not match is `malformed_response` at the backend edge, retried like any other
failure, so nothing further in turns an upstream's mistake into turnout's own 500.
"""

from __future__ import annotations

from typing import Any

from turnout.backends.base import Failure, Operation, UpstreamError

# The request fields of chat completions and completions that turnout checks at its edge.
REQUEST_FIELDS = frozenset(
    {
        # both
        "model", "stream", "stream_options", "max_tokens", "temperature", "top_p", "n", "stop",
        "presence_penalty", "frequency_penalty", "logit_bias", "seed", "user", "metadata",
        "service_tier", "store", "logprobs",
        # chat completions
        "messages", "max_completion_tokens", "top_logprobs", "response_format", "tools",
        "tool_choice", "parallel_tool_calls", "modalities", "reasoning_effort", "verbosity",
        "safety_identifier", "prompt_cache_key", "prediction", "audio", "web_search_options",
        "functions", "function_call",
        # completions
        "prompt", "best_of", "echo", "suffix",
    }
)  # fmt: skip


def _malformed(what: str) -> UpstreamError:
    return UpstreamError(Failure.MALFORMED_RESPONSE, f"upstream {what}")


def _count(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def check_usage(usage: Any) -> None:
    if usage is None:
        return
    if not isinstance(usage, dict):
        raise _malformed("usage is not an object")
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        if not _count(usage.get(key)):
            raise _malformed(f"usage.{key} is not a non-negative integer")


def _text(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, str):
        raise _malformed(f"{where} is not a string")


def _tool_calls(calls: Any, where: str, *, streamed: bool) -> None:
    if calls is None:
        return
    if not isinstance(calls, list):
        raise _malformed(f"{where} is not a list")
    for call in calls:
        if not isinstance(call, dict):
            raise _malformed(f"{where} holds something other than objects")
        if streamed and not _count(call.get("index")):
            raise _malformed(f"{where}[].index is not a non-negative integer")
        fn = call.get("function")
        if fn is None and streamed:
            continue
        if not isinstance(fn, dict):
            raise _malformed(f"{where}[].function is not an object")
        _text(fn.get("name"), f"{where}[].function.name")
        _text(fn.get("arguments"), f"{where}[].function.arguments")
        _text(call.get("id"), f"{where}[].id")


def _choices(data: dict[str, Any], *, allow_empty: bool) -> list[dict[str, Any]]:
    choices = data.get("choices")
    if choices is None and allow_empty:
        return []
    if not isinstance(choices, list):
        raise _malformed("response's choices is not a list")
    if not choices and not allow_empty:
        raise _malformed("response has empty choices")
    for c in choices:
        if not isinstance(c, dict):
            raise _malformed("response's choices hold something other than objects")
        _text(c.get("finish_reason"), "choices[].finish_reason")
    return choices


def check_completion(data: Any, operation: Operation) -> None:
    """A whole answer: choices with a message (chat) or text (completions), and usage."""
    if not isinstance(data, dict):
        raise _malformed("response is not a JSON object")
    for c in _choices(data, allow_empty=False):
        if operation is Operation.CHAT:
            message = c.get("message")
            if not isinstance(message, dict):
                raise _malformed("choices[].message is not an object")
            _text(message.get("content"), "choices[].message.content")
            _tool_calls(message.get("tool_calls"), "choices[].message.tool_calls", streamed=False)
        else:
            _text(c.get("text"), "choices[].text")
    check_usage(data.get("usage"))


def check_chunk(data: Any, operation: Operation) -> None:
    """One streamed event: the same shape, with deltas."""
    if not isinstance(data, dict):
        raise _malformed("stream event is not an object")
    for c in _choices(data, allow_empty=True):
        if operation is Operation.CHAT:
            delta = c.get("delta")
            if delta is None:
                continue
            if not isinstance(delta, dict):
                raise _malformed("stream event's choices[].delta is not an object")
            _text(delta.get("content"), "choices[].delta.content")
            _tool_calls(delta.get("tool_calls"), "choices[].delta.tool_calls", streamed=True)
        else:
            _text(c.get("text"), "choices[].text")
    check_usage(data.get("usage"))
