"""Checks for single fields of a wire format: type, range and size, with the field's path.

Every error names the field (`param`) and quotes at most a short prefix of what the client sent,
so neither a huge value nor a secret in it is echoed back whole.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from turnout.errors import ApiError

# Deeper bodies than this are refused: the record's serialiser writes at most 254 levels, and
# JSON Schema checks recurse once per level.
MAX_DEPTH = 64
MAX_NAME = 64  # OpenAI's limit for function and JSON-schema names
MAX_ID = 256  # model names, tool-call ids, user ids
MAX_INT = 2**53  # exact in every JSON reader, and within SQLite's 64-bit integers when doubled
QUOTE = 40  # characters of client input an error message may quote

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Check = Callable[[Any, str], None]


def quote(value: Any, limit: int = QUOTE) -> str:
    """A short, printable prefix of client input for an error message."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return repr(text if len(text) <= limit else text[:limit] + "…")


def bad(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def integer(low: int, high: int) -> Check:
    def check(value: Any, where: str) -> None:
        if not is_int(value) or not low <= value <= high:
            raise bad(f"`{where}` must be an integer from {low} to {high}", where)

    return check


def number(low: float, high: float) -> Check:
    def check(value: Any, where: str) -> None:
        if not is_number(value) or not low <= value <= high:
            raise bad(f"`{where}` must be a number between {low:g} and {high:g}", where)

    return check


def boolean(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise bad(f"`{where}` must be a boolean", where)


def string(limit: int | None = None, *, nonempty: bool = False) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, str):
            raise bad(f"`{where}` must be a string", where)
        if nonempty and not value:
            raise bad(f"`{where}` must not be empty", where)
        if limit is not None and len(value) > limit:
            raise bad(f"`{where}` is longer than {limit} characters", where)

    return check


def one_of(*allowed: str) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, str) or value not in allowed:
            raise bad(f"`{where}` must be one of {', '.join(allowed)}; got {quote(value)}", where)

    return check


def name(value: Any, where: str) -> None:
    if not isinstance(value, str) or not NAME.match(value):
        raise bad(
            f"`{where}` must be 1 to {MAX_NAME} letters, digits, '_' or '-'; got {quote(value)}",
            where,
        )


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(f"`{where}` must be an object", where)
    return value


def array(value: Any, where: str, *, limit: int | None = None, nonempty: bool = False) -> list[Any]:
    if not isinstance(value, list):
        raise bad(f"`{where}` must be a list", where)
    if nonempty and not value:
        raise bad(f"`{where}` must not be empty", where)
    if limit is not None and len(value) > limit:
        raise bad(f"`{where}` holds more than {limit} items", where)
    return value


def anything(value: Any, where: str) -> None:
    """Any JSON value: depth and size are bounded for the whole body already."""


def fields(
    value: dict[str, Any], where: str, known: dict[str, Check], required: Iterable[str] = ()
) -> None:
    """Check the known keys of an object; a missing required key is named."""
    for key in required:
        if value.get(key) is None:
            raise bad(f"`{where}.{key}` is required", f"{where}.{key}")
    for key, check in known.items():
        if key in value and value[key] is not None:
            check(value[key], f"{where}.{key}")


def depth_error(value: Any, limit: int = MAX_DEPTH) -> str | None:
    """None when `value` nests at most `limit` levels of objects and lists, else a description."""
    if type(value) is not dict and type(value) is not list:
        return None
    level: list[Any] = [value]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return f"the request nests deeper than {limit} levels of objects and lists"
        below: list[Any] = []
        for item in level:  # one level at a time: no per-node bookkeeping
            children = item.values() if type(item) is dict else item
            below += [v for v in children if type(v) is dict or type(v) is list]
        level = below
    return None
