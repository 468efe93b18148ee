"""The OpenAI wire format, inbound: parse and check a request body before anything acts on it."""

from __future__ import annotations

from typing import Any

import orjson

from turnout.backends.base import Operation
from turnout.errors import ApiError
from turnout.lifecycle.validate import schema_error

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_value" if param else None)


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, f"request body is not valid UTF-8 (byte {exc.start})", code="invalid_encoding"
        ) from None
    if not text.strip():
        raise ApiError(400, "request body is empty; expected a JSON object", code="invalid_json")
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    return body


def check_request(body: dict[str, Any], operation: Operation) -> None:
    """Raise ApiError naming the first wrong field; otherwise the body is safe to act on."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("`model` is required and must be a non-empty string", "model")
    if operation is Operation.CHAT:
        _check_messages(body.get("messages"))
    else:
        _check_prompt(body.get("prompt"))
    _check_type(body, "stream", bool)
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None and (not _is_int(value) or value < 1):
            raise _bad(f"`{key}` must be a positive integer", key)
    _check_range(body, "temperature", 0.0, 2.0)
    _check_range(body, "top_p", 0.0, 1.0)
    n = body.get("n")
    if n is not None and (not _is_int(n) or n != 1):
        raise _bad("`n` other than 1 is not supported", "n")
    _check_type(body, "stream_options", dict)
    if "stop" in body and body["stop"] is not None:
        stop = body["stop"]
        if not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)
        ):
            raise _bad("`stop` must be a string or a list of strings", "stop")
    _check_response_format(body.get("response_format"))
    _check_tools(body.get("tools"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_type(body: dict[str, Any], key: str, kind: type) -> None:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise _bad(f"`{key}` must be a {kind.__name__ if kind is not dict else 'object'}", key)


def _check_range(body: dict[str, Any], key: str, low: float, high: float) -> None:
    value = body.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _bad(f"`{key}` must be a number between {low:g} and {high:g}", key)


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise _bad("`messages` is required and must be a non-empty list", "messages")
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _bad(f"`{where}` must be an object", where)
        role = msg.get("role")
        if role not in ROLES:
            raise _bad(f"`{where}.role` must be one of {', '.join(sorted(ROLES))}", f"{where}.role")
        content = msg.get("content")
        if content is None:
            if role != "assistant" or not msg.get("tool_calls"):
                raise _bad(f"`{where}.content` is required", f"{where}.content")
        elif not isinstance(content, str | list):
            raise _bad(f"`{where}.content` must be a string or a list of parts", f"{where}.content")


def _check_prompt(prompt: Any) -> None:
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) > 1:
            raise _bad("a list of several prompts is not supported; send one", "prompt")
        return
    raise _bad("`prompt` is required and must be a string", "prompt")


def _check_response_format(fmt: Any) -> None:
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise _bad("`response_format` must be an object", "response_format")
    kind = fmt.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise _bad(
            "`response_format.type` must be text, json_object or json_schema",
            "response_format.type",
        )
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise _bad(
                "`response_format.json_schema` must be an object with a `name`",
                "response_format.json_schema",
            )
        if "schema" in spec:
            problem = schema_error(spec["schema"])
            if problem:
                raise _bad(
                    f"`response_format.json_schema.schema` is not a valid JSON Schema: {problem}",
                    "response_format.json_schema.schema",
                )


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _bad("`tools` must be a list", "tools")
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise _bad(f"`{where}` must be {{type: function, function: {{…}}}}", where)
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise _bad(f"`{where}.function.name` is required", f"{where}.function.name")
        if "parameters" in fn:
            problem = schema_error(fn["parameters"])
            if problem:
                raise _bad(
                    f"`{where}.function.parameters` is not a valid JSON Schema: {problem}",
                    f"{where}.function.parameters",
                )
