"""Output validation: the failures that arrive as HTTP 200."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson

from turnout.errors import TurnoutError
from turnout.lifecycle import patterns

# How long the `pattern`s of a client's schema may take over one answer. They run on the event
# loop, on a regex engine that stops at a deadline, so a pathological pattern costs at most this.
PATTERN_BUDGET_S = 0.05


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why an answer is not acceptable; `message` is fed back to the model on a re-ask."""

    kind: str  # empty | invalid_json | schema_violation | bad_tool_call | check_timeout
    message: str


@functools.lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Any:
    schema = orjson.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def schema_error(schema: Any) -> str | None:
    """None if `schema` is a usable JSON Schema, else what is wrong with it."""
    if not isinstance(schema, dict):
        return "must be a JSON object"
    # An agent sends the same tools every turn: checking a schema costs far more than keying it.
    return _schema_error(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))


@functools.lru_cache(maxsize=1024)
def _schema_error(schema_json: bytes) -> str | None:
    schema = orjson.loads(schema_json)
    try:
        with patterns.budget(PATTERN_BUDGET_S):
            jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return exc.message
    except (RecursionError, TimeoutError):
        return "it is nested too deeply or its patterns take too long to check"
    return None


class CheckTimeout(TurnoutError):
    """A client's schema took longer to check than an answer may (a pathological pattern)."""


def _violation(schema: dict[str, Any], value: Any) -> str | None:
    """None if `value` matches `schema`; raises CheckTimeout when its patterns run too long."""
    validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    with patterns.budget(PATTERN_BUDGET_S):
        try:
            error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        except TimeoutError:
            raise CheckTimeout from None
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"


def _checked(what: str, schema: dict[str, Any], value: Any) -> Invalid | None:
    try:
        problem = _violation(schema, value)
    except CheckTimeout:
        return Invalid(
            "check_timeout",
            f"{what} could not be checked within {PATTERN_BUDGET_S * 1000:.0f} ms"
            " (a `pattern` in the schema backtracks too much)",
        )
    except RecursionError:
        return Invalid("check_timeout", f"{what} is nested too deeply to check")
    if problem:
        return Invalid(
            "bad_tool_call" if what.startswith("arguments") else "schema_violation",
            f"{what} {problem}",
        )
    return None


def response_schema(body: dict[str, Any]) -> tuple[str, dict[str, Any] | None] | None:
    """The requested structured-output mode: ("json_object", None) or ("json_schema", schema)."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_object":
        return ("json_object", None)
    if kind == "json_schema":
        spec = fmt.get("json_schema") or {}
        return ("json_schema", spec.get("schema") or {})
    return None


def is_structured(body: dict[str, Any]) -> bool:
    return response_schema(body) is not None or bool(body.get("tools"))


def validate_message(body: dict[str, Any], message: dict[str, Any]) -> Invalid | None:
    """Check one assistant message against what the request asked for."""
    content = message.get("content")
    tool_calls = message.get("tool_calls") or []
    if tool_calls:
        return _check_tool_calls(body, tool_calls)
    if not isinstance(content, str) or not content.strip():
        return Invalid("empty", "the response was empty")
    wanted = response_schema(body)
    if wanted is None:
        return None
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        return Invalid("invalid_json", f"the response is not valid JSON: {exc}")
    mode, schema = wanted
    if mode == "json_object" and not isinstance(value, dict):
        return Invalid("invalid_json", "the response must be a JSON object")
    if schema:
        return _checked("the JSON does not match the schema", schema, value)
    return None


def validate_text(text: Any) -> Invalid | None:
    if not isinstance(text, str) or not text.strip():
        return Invalid("empty", "the response was empty")
    return None


def _check_tool_calls(body: dict[str, Any], calls: list[Any]) -> Invalid | None:
    tools = {}
    for tool in body.get("tools") or []:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            tools[fn["name"]] = fn.get("parameters") or {}
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            return Invalid("bad_tool_call", "a tool call has no function name")
        name = fn["name"]
        if tools and name not in tools:
            return Invalid("bad_tool_call", f"tool {name!r} does not exist")
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError as exc:
            return Invalid("bad_tool_call", f"arguments of {name!r} are not valid JSON: {exc}")
        if tools.get(name):
            invalid = _checked(f"arguments of {name!r} violate its schema", tools[name], args)
            if invalid is not None:
                return invalid
    return None


def cascade_check(check: Any, message: dict[str, Any] | None, text: Any) -> Invalid | None:
    """The configured bar a cheap answer must clear before a cascade keeps it."""
    content = (message or {}).get("content") if message is not None else text
    if (message or {}).get("tool_calls"):
        return None
    content = content if isinstance(content, str) else ""
    if check.min_chars and len(content.strip()) < check.min_chars:
        return Invalid("cascade_check", f"the answer is shorter than {check.min_chars} characters")
    if check.must_match and not _compiled(check.must_match).search(content):
        return Invalid("cascade_check", f"the answer does not match {check.must_match!r}")
    return None


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
