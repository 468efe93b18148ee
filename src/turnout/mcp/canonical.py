"""Canonical JSON (RFC 8785 style) and the hash that pins one tool definition."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

# What a tool *is* to the model and the client. `_meta`, `icons` and `execution` are left out:
# they change for reasons unrelated to what the tool does or tells the model.
PINNED_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


def canonical_json(value: Any) -> str:
    """Serialise `value` as RFC 8785 does: sorted keys (UTF-16 order), no whitespace,
    ECMAScript number formatting, minimal string escaping."""
    parts: list[str] = []
    _emit(value, parts)
    return "".join(parts)


def _emit(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, bool):
        out.append("null" if value is None else ("true" if value else "false"))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_es_number(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: str(k).encode("utf-16-be"))):
            if i:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _emit(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _emit(item, out)
        out.append("]")
    else:
        raise TypeError(f"not JSON: {type(value).__name__}")


def _es_number(x: float) -> str:
    """Number.prototype.toString for finite doubles (RFC 8785 §3.2.2.3)."""
    if not math.isfinite(x):
        raise ValueError("NaN and infinities have no JSON form")
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < 1e21:
        return str(int(x))
    sign = "-" if x < 0 else ""
    digits, exp = _shortest_digits(abs(x))
    n = exp + len(digits)  # position of the decimal point relative to the digits
    if len(digits) <= n <= 21:
        return sign + digits + "0" * (n - len(digits))
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"


def _shortest_digits(x: float) -> tuple[str, int]:
    """Shortest round-tripping decimal digits and exponent: x == int(digits) * 10**exp."""
    mantissa, _, exponent = repr(x).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    exp = int(exponent or 0) - len(frac)
    stripped = digits.rstrip("0")
    return stripped, exp + (len(digits) - len(stripped))


def sha256_hex(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def pinned_view(definition: dict[str, Any]) -> dict[str, Any]:
    """The part of a tool definition that is pinned; absent and null fields are the same."""
    return {k: definition[k] for k in PINNED_FIELDS if definition.get(k) is not None}


def tool_hash(definition: dict[str, Any]) -> str:
    return "sha256:" + sha256_hex(canonical_json(pinned_view(definition)))


def text_hash(text: str | None) -> str | None:
    return None if text is None else "sha256:" + sha256_hex(text)
