"""What makes two model calls "the same call": the canonical request, its key, and diffs.

A cassette entry is found by what was asked (model, messages, tools, sampling …), never by URL:
every chat call goes to the same path, so a path says nothing about which answer belongs to it.
"""

from __future__ import annotations

import difflib
import hashlib
from typing import Any

import orjson

from turnout.backends.base import Operation, UpstreamRequest

# The parts of a request body that change the answer. Anything else (user, metadata,
# stream_options, request ids) is left out, so it can change without invalidating a cassette.
KEY_FIELDS = (
    "model",
    "messages",
    "prompt",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "response_format",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "reasoning_effort",
)


def _normal(value: Any) -> Any:
    """JSON-equal values become equal: nulls dropped, 1.0 == 1, dict key order ignored later."""
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def canonical_request(deployment: str, request: UpstreamRequest, stream: bool) -> dict[str, Any]:
    """The request as a cassette keys and shows it."""
    body = request.body
    out: dict[str, Any] = {
        "deployment": deployment,
        "operation": request.operation.value,
        "stream": stream,
    }
    for name in KEY_FIELDS:
        if body.get(name) is not None:
            out[name] = _normal(body[name])
    if request.operation is Operation.COMPLETION:
        out.pop("messages", None)
    return out


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def request_key(canonical: dict[str, Any]) -> str:
    return hashlib.sha256(dumps(canonical)).hexdigest()[:20]


def _label(value: Any) -> str:
    """A list item as a person would name it: a tool by its name, a message by its role."""
    if isinstance(value, dict):
        fn = value.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return str(fn["name"])
        for name in ("name", "role"):
            if isinstance(value.get(name), str):
                return str(value[name])
    return dumps(value).decode()[:30]


def _same_items(x: list[Any], y: list[Any]) -> bool:
    return len(x) == len(y) and sorted(map(dumps, x)) == sorted(map(dumps, y))


def _order_change(x: list[Any], y: list[Any]) -> str:
    ours, theirs = [_label(v) for v in x], [_label(v) for v in y]
    if len(set(ours)) == len(ours):
        return f"only the order changed: recorded {', '.join(theirs)}; now {', '.join(ours)}"
    where = [[dumps(v) for v in y].index(dumps(v)) for v in x]
    return f"only the order changed: now in recorded positions {where}"


def aligned(actual: Any, recorded: Any) -> Any:
    """`actual` with each list that is a reordering of the recorded one put back in the
    recorded order, so a diff shows only what else changed."""
    if isinstance(actual, dict) and isinstance(recorded, dict):
        return {k: aligned(v, recorded[k]) if k in recorded else v for k, v in actual.items()}
    if isinstance(actual, list) and isinstance(recorded, list):
        if actual != recorded and _same_items(actual, recorded):
            return recorded
        return [aligned(a, r) for a, r in zip(actual, recorded, strict=False)] + actual[
            len(recorded) :
        ]
    return actual


def differing_paths(a: Any, b: Any, path: str = "", limit: int = 12) -> list[str]:
    """Where two canonical requests differ, as JSON paths (`messages[2].content`)."""
    out: list[str] = []

    def walk(x: Any, y: Any, at: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                where = f"{at}.{k}" if at else k
                if k not in x:
                    out.append(f"{where} (only in this request)")
                elif k not in y:
                    out.append(f"{where} (only in the recorded one)")
                else:
                    walk(x[k], y[k], where)
            return
        if isinstance(x, list) and isinstance(y, list):
            if x != y and _same_items(x, y):
                out.append(f"{at} ({_order_change(x, y)})")
                return
            for i in range(max(len(x), len(y))):
                if i >= len(x) or i >= len(y):
                    out.append(f"{at}[{i}:] (lengths {len(x)} vs {len(y)} recorded)")
                    return
                walk(x[i], y[i], f"{at}[{i}]")
            return
        if x != y:
            out.append(at or "(root)")

    walk(a, b, path)
    return out


def _lines(value: Any) -> list[str]:
    return (
        orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode().split("\n")
    )


def similarity(a: dict[str, Any], b: dict[str, Any]) -> float:
    return difflib.SequenceMatcher(None, _lines(a), _lines(b), autojunk=False).ratio()


def explain_miss(
    actual: dict[str, Any], recorded: list[dict[str, Any]], *, max_diff_lines: int = 60
) -> str:
    """A diff of `actual` against the most similar recorded request."""
    if not recorded:
        return "the cassette has no recorded requests"
    nearest = max(recorded, key=lambda r: similarity(aligned(actual, r), r))
    paths = differing_paths(actual, nearest)
    if not paths:
        return "an identical request was recorded, but fewer times than it was asked now"
    shown = aligned(actual, nearest)  # reorderings are named in `paths`, not diffed line by line
    if shown == nearest:
        return "differs from the nearest recorded request only in order: " + ", ".join(paths)
    diff = list(
        difflib.unified_diff(
            _lines(nearest), _lines(shown), "recorded (nearest)", "requested", lineterm="", n=2
        )
    )
    if len(diff) > max_diff_lines:
        diff = [*diff[:max_diff_lines], f"... ({len(diff) - max_diff_lines} more diff lines)"]
    return (
        "differs from the nearest recorded request at: " + ", ".join(paths) + "\n" + "\n".join(diff)
    )
