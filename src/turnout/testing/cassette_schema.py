"""The cassette file format as a JSON Schema, and the check run on every load.

Cassettes are meant to be read and edited by hand; a misspelt field must be an error that names
the file, the entry and the field, never a traceback inside the gateway (docs/cassette-format.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from turnout.backends.base import Failure
from turnout.errors import TurnoutError
from turnout.testing.keys import request_key

FORMAT_VERSION = 1
_MAX_PROBLEMS = 10

_ERROR = {
    "type": "object",
    "required": ["failure", "message"],
    "additionalProperties": False,
    "properties": {
        "failure": {"enum": [f.value for f in Failure]},
        "message": {"type": "string"},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "retry_after_s": {"type": "number", "minimum": 0},
    },
}

_CHOICE = {
    "type": "object",
    "properties": {
        "index": {"type": "integer"},
        "message": {"type": "object"},
        "text": {"type": ["string", "null"]},
        "finish_reason": {"type": ["string", "null"]},
    },
}

_EVENT = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
    "properties": {
        "data": {"type": "object"},
        "raw": {"type": "string", "pattern": "(^|\\n)data:"},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "turnout cassette",
    "type": "object",
    "required": ["turnout_cassette", "entries"],
    "additionalProperties": False,
    "properties": {
        "turnout_cassette": {"const": FORMAT_VERSION},
        "note": {"type": "string"},
        "entries": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "repeat", "request", "response"],
                "additionalProperties": False,
                "properties": {
                    "key": {"type": "string", "pattern": "^[0-9a-f]{20}$"},
                    "repeat": {"type": "integer", "minimum": 0},
                    "recorded_by": {"type": "string"},
                    "request": {
                        "type": "object",
                        "required": ["deployment", "operation", "stream"],
                        "properties": {
                            "deployment": {"type": "string"},
                            "operation": {"enum": ["chat", "text_completion"]},
                            "stream": {"type": "boolean"},
                        },
                    },
                    "response": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": False,
                        "properties": {
                            "completion": {
                                "type": "object",
                                "required": ["choices"],
                                "properties": {
                                    "choices": {"type": "array", "minItems": 1, "items": _CHOICE}
                                },
                            },
                            "stream": {"type": "array", "items": _EVENT},
                            "error": _ERROR,
                        },
                    },
                },
            },
        },
    },
}

_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


class CassetteError(TurnoutError, ValueError):
    """A cassette file that cannot be replayed as it is; the message names every problem found."""


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _entry_label(doc: Any, index: int) -> str:
    try:
        e = doc["entries"][index]
        return f"entry {index} (key {e.get('key')!r}, repeat {e.get('repeat')!r})"
    except (KeyError, IndexError, TypeError, AttributeError):
        return f"entry {index}"


def _why(error: jsonschema.ValidationError) -> str:
    """Schema messages, said the way a person editing the file needs them."""
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties") or ())
        extra = sorted(set(error.instance) - set(allowed))
        return f"unknown field {', '.join(map(repr, extra))} (allowed: {', '.join(allowed)})"
    if error.validator == "required":
        return error.message.replace("is a required property", "is missing")
    if error.validator == "minProperties" and error.path and error.path[-1] == "response":
        return "is empty: it needs a completion, a stream or an error"
    return error.message


def problems(doc: Any) -> list[str]:
    """What is wrong with a parsed cassette, one line each, entries named by index and key."""
    out: list[str] = []
    for error in sorted(_VALIDATOR.iter_errors(doc), key=lambda e: list(map(str, e.path))):
        parts = list(error.absolute_path)
        if len(parts) >= 2 and parts[0] == "entries" and isinstance(parts[1], int):
            where = _entry_label(doc, parts[1])
            field = _path(parts[2:]) or "(the entry)"
            out.append(f"{where}: {field}: {_why(error)}")
        else:
            out.append(f"{_path(parts) or '(top level)'}: {_why(error)}")
    if out:
        return out
    seen: dict[tuple[str, int], int] = {}
    for i, e in enumerate(doc["entries"]):
        actual = request_key(e["request"])
        if actual != e["key"]:
            out.append(
                f"{_entry_label(doc, i)}: request: edited after recording — it is now key "
                f"{actual!r}; set key to {actual!r} to replay the edited request, or re-record"
            )
        slot = (e["key"], e["repeat"])
        if slot in seen:
            out.append(f"{_entry_label(doc, i)}: the same key and repeat as entry {seen[slot]}")
        seen.setdefault(slot, i)
        for j, event in enumerate(e["response"].get("stream") or ()):
            if "raw" in event and not _raw_parses(event["raw"]):
                out.append(
                    f"{_entry_label(doc, i)}: response.stream[{j}].raw: its data lines are not "
                    "one JSON value"
                )
    return out


def _raw_parses(raw: str) -> bool:
    payload = "\n".join(line[5:].lstrip() for line in raw.split("\n") if line.startswith("data:"))
    try:
        return isinstance(orjson.loads(payload), dict)
    except orjson.JSONDecodeError:
        return False


def check(doc: Any, path: Path | str) -> None:
    """Raise CassetteError naming the file and each problem (the first few) in `doc`."""
    found = problems(doc)
    if not found:
        return
    shown = found[:_MAX_PROBLEMS]
    more = f"\n  … and {len(found) - len(shown)} more" if len(found) > len(shown) else ""
    raise CassetteError(
        f"{path}: not a valid turnout cassette (format {FORMAT_VERSION}; see "
        "docs/cassette-format.md):\n  " + "\n  ".join(shown) + more
    )
