"""The OpenAI wire format, inbound: parse a body and check every field once, before anything acts.

Fields turnout does not know are left in the body and forwarded only where the deployment allows
them (`lifecycle/forwarding.py`); the record says which were dropped.
"""

from __future__ import annotations

from typing import Any

import orjson

from turnout.backends.base import Operation
from turnout.errors import ApiError
from turnout.lifecycle.validate import schema_error
from turnout.routing.admission import milliseconds
from turnout.server.fields import (
    MAX_ID,
    Check,
    anything,
    array,
    bad,
    boolean,
    depth_error,
    fields,
    integer,
    is_number,
    name,
    number,
    obj,
    one_of,
    quote,
    string,
)

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MAX_OUTPUT_TOKENS = 2**31 - 1  # doubled by a truncation retry, still within a 64-bit record
MAX_TOOLS = 128
MAX_STOP = 16


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
    problem = depth_error(body)
    if problem is not None:
        raise bad(problem, code="too_deep")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("`model` is required and must be a non-empty string", "model")
    if len(model) > MAX_ID:
        raise bad(f"`model` is longer than {MAX_ID} characters", "model")
    # The other operation's input field is read by routing and length prediction: refuse it.
    if operation is Operation.CHAT:
        _check_messages(body.get("messages"))
        _absent(body, "prompt", "/v1/completions")
        table = _CHAT
    else:
        _check_prompt(body.get("prompt"))
        _absent(body, "messages", "/v1/chat/completions")
        table = _COMPLETION
    for key, value in body.items():
        check = table.get(key)
        if check is not None and value is not None:
            check(value, key)
    if operation is Operation.CHAT:
        _check_tool_choice(body)
        if body.get("top_logprobs") is not None and body.get("logprobs") is not True:
            raise bad("`top_logprobs` needs `logprobs: true`", "top_logprobs")


# -- top-level fields ---------------------------------------------------------------------------


def _absent(body: dict[str, Any], key: str, route: str) -> None:
    if body.get(key) is not None:
        raise bad(f"`{key}` belongs to {route}, not this route", key)


def _n(value: Any, where: str) -> None:
    if value != 1 or isinstance(value, bool):
        raise bad(f"`{where}` other than 1 is not supported", where)


def _stop(value: Any, where: str) -> None:
    if isinstance(value, str):
        string(1000)(value, where)
        return
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise bad("`stop` must be a string or a list of strings", where)
    array(value, where, limit=MAX_STOP)
    for i, s in enumerate(value):
        string(1000)(s, f"{where}[{i}]")


def _stream_options(value: Any, where: str) -> None:
    fields(obj(value, where), where, {"include_usage": boolean, "include_obfuscation": boolean})


def _logit_bias(value: Any, where: str) -> None:
    biases = obj(value, where)
    if len(biases) > 1024:
        raise bad(f"`{where}` holds more than 1024 tokens", where)
    for token, bias in biases.items():
        if not token.isdigit():
            raise bad(f"`{where}` keys must be token ids; got {quote(token)}", where)
        number(-100, 100)(bias, f"{where}.{token}")


def _metadata(value: Any, where: str) -> None:
    meta = obj(value, where)
    if len(meta) > 16:
        raise bad(f"`{where}` holds more than 16 keys", where)
    for key, item in meta.items():
        if len(key) > 64:
            raise bad(f"`{where}` keys must be at most 64 characters; got {quote(key)}", where)
        if key == "deadline_ms":
            milliseconds(item, f"{where}.deadline_ms")
        elif isinstance(item, str):
            string(512)(item, f"{where}.{key}")
        elif not (is_number(item) or isinstance(item, bool)):
            raise bad(f"`{where}.{key}` must be a string, number or boolean", f"{where}.{key}")


def _response_format(value: Any, where: str) -> None:
    fmt = obj(value, where)
    one_of("text", "json_object", "json_schema")(fmt.get("type"), f"{where}.type")
    if fmt["type"] != "json_schema":
        return
    spec = obj(fmt.get("json_schema"), f"{where}.json_schema")
    name(spec.get("name"), f"{where}.json_schema.name")
    fields(spec, f"{where}.json_schema", {"description": string(), "strict": boolean})
    if "schema" in spec:
        problem = schema_error(spec["schema"])
        if problem:
            raise bad(
                f"`{where}.json_schema.schema` is not a valid JSON Schema: {problem}",
                f"{where}.json_schema.schema",
            )


def _tools(value: Any, where: str) -> None:
    for i, tool in enumerate(array(value, where, limit=MAX_TOOLS)):
        at = f"{where}[{i}]"
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise bad(f"`{at}` must be {{type: function, function: {{…}}}}", at)
        if fn.get("name") in (None, ""):
            raise bad(f"`{at}.function.name` is required", f"{at}.function.name")
        name(fn["name"], f"{at}.function.name")
        fields(fn, f"{at}.function", {"description": string(), "strict": boolean})
        if "parameters" in fn:
            problem = schema_error(fn["parameters"])
            if problem:
                raise bad(
                    f"`{at}.function.parameters` is not a valid JSON Schema: {problem}",
                    f"{at}.function.parameters",
                )


def _check_tool_choice(body: dict[str, Any]) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    tools = body.get("tools") or []
    if isinstance(choice, str):
        one_of("none", "auto", "required")(choice, "tool_choice")
        if choice != "none" and not tools:
            raise bad("`tool_choice` needs `tools`", "tool_choice")
        return
    spec = obj(choice, "tool_choice")
    if spec.get("type") != "function":
        raise bad("`tool_choice.type` must be function", "tool_choice.type")
    fn = obj(spec.get("function"), "tool_choice.function")
    name(fn.get("name"), "tool_choice.function.name")
    names = {t["function"]["name"] for t in tools}
    if fn["name"] not in names:
        raise bad(
            f"`tool_choice.function.name` {quote(fn['name'])} is not one of `tools`",
            "tool_choice.function.name",
        )


def _modalities(value: Any, where: str) -> None:
    for i, kind in enumerate(array(value, where, limit=2)):
        one_of("text", "audio")(kind, f"{where}[{i}]")


def _functions(value: Any, where: str) -> None:  # the deprecated form of `tools`
    for i, fn in enumerate(array(value, where, limit=MAX_TOOLS)):
        name(obj(fn, f"{where}[{i}]").get("name"), f"{where}[{i}].name")


def _function_call(value: Any, where: str) -> None:
    if not isinstance(value, str):
        name(obj(value, where).get("name"), f"{where}.name")


_COMMON: dict[str, Check] = {
    "model": anything,  # checked first
    "stream": boolean,
    "stream_options": _stream_options,
    "max_tokens": integer(1, MAX_OUTPUT_TOKENS),
    "temperature": number(0.0, 2.0),
    "top_p": number(0.0, 1.0),
    "n": _n,
    "stop": _stop,
    "presence_penalty": number(-2.0, 2.0),
    "frequency_penalty": number(-2.0, 2.0),
    "logit_bias": _logit_bias,
    "seed": integer(-(2**63), 2**63 - 1),
    "user": string(MAX_ID),
    "metadata": _metadata,
    "service_tier": one_of("auto", "default", "flex", "scale", "priority"),
    "store": boolean,
}
_CHAT: dict[str, Check] = {
    **_COMMON,
    "messages": anything,  # checked first
    "max_completion_tokens": integer(1, MAX_OUTPUT_TOKENS),
    "logprobs": boolean,
    "top_logprobs": integer(0, 20),
    "response_format": _response_format,
    "tools": _tools,
    "tool_choice": anything,  # checked against `tools` afterwards
    "parallel_tool_calls": boolean,
    "modalities": _modalities,
    "reasoning_effort": one_of("none", "minimal", "low", "medium", "high"),
    "verbosity": one_of("low", "medium", "high"),
    "safety_identifier": string(MAX_ID),
    "prompt_cache_key": string(MAX_ID),
    "prediction": obj,
    "audio": obj,
    "web_search_options": obj,
    "functions": _functions,
    "function_call": _function_call,
}
_COMPLETION: dict[str, Check] = {
    **_COMMON,
    "prompt": anything,  # checked first
    "best_of": _n,
    "echo": boolean,
    "logprobs": integer(0, 5),
    "suffix": string(),
}


# -- messages -----------------------------------------------------------------------------------

_PART_TYPES = {
    "system": ("text",),
    "developer": ("text",),
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
    "tool": ("text",),
    "function": ("text",),
}


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise bad("`messages` is required and must be a non-empty list", "messages")
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise bad(f"`{where}` must be an object", where)
        role = msg.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise bad(
                f"`{where}.role` must be one of {', '.join(ROLES)}; got {quote(role)}",
                f"{where}.role",
            )
        _check_message(msg, role, where)


def _check_message(msg: dict[str, Any], role: str, where: str) -> None:
    content = msg.get("content")
    calls = msg.get("tool_calls")
    if content is None:
        if role != "assistant" or not (calls or msg.get("function_call")):
            raise bad(f"`{where}.content` is required", f"{where}.content")
    elif isinstance(content, list):
        _check_parts(content, role, f"{where}.content")
    elif not isinstance(content, str):
        raise bad(f"`{where}.content` must be a string or a list of parts", f"{where}.content")
    if role == "function":
        name(msg.get("name"), f"{where}.name")
    elif msg.get("name") is not None:
        string(MAX_ID)(msg["name"], f"{where}.name")
    if role == "tool":
        if msg.get("tool_call_id") in (None, ""):
            raise bad(f"`{where}.tool_call_id` is required", f"{where}.tool_call_id")
        string(MAX_ID)(msg["tool_call_id"], f"{where}.tool_call_id")
    if calls is not None:
        if role != "assistant":
            raise bad(f"`{where}.tool_calls` is only allowed on assistant messages", where)
        _check_tool_calls(calls, f"{where}.tool_calls")
    if msg.get("refusal") is not None:
        string()(msg["refusal"], f"{where}.refusal")


def _check_parts(parts: list[Any], role: str, where: str) -> None:
    allowed = _PART_TYPES[role]
    for j, part in enumerate(parts):
        at = f"{where}[{j}]"
        kind = obj(part, at).get("type")
        if not isinstance(kind, str) or kind not in allowed:
            raise bad(
                f"`{at}.type` must be one of {', '.join(allowed)} in a {role} message;"
                f" got {quote(kind)}",
                f"{at}.type",
            )
        if kind in ("text", "refusal"):
            string()(part.get(kind), f"{at}.{kind}")
        elif kind == "image_url":
            image = obj(part.get("image_url"), f"{at}.image_url")
            string(nonempty=True)(image.get("url"), f"{at}.image_url.url")
            if image.get("detail") is not None:
                one_of("auto", "low", "high")(image["detail"], f"{at}.image_url.detail")
        else:
            obj(part.get(kind), f"{at}.{kind}")


def _check_tool_calls(calls: Any, where: str) -> None:
    for k, call in enumerate(array(calls, where, limit=MAX_TOOLS)):
        at = f"{where}[{k}]"
        call = obj(call, at)
        string(MAX_ID, nonempty=True)(call.get("id"), f"{at}.id")
        if call.get("type", "function") != "function":
            raise bad(f"`{at}.type` must be function", f"{at}.type")
        fn = obj(call.get("function"), f"{at}.function")
        name(fn.get("name"), f"{at}.function.name")
        string()(fn.get("arguments"), f"{at}.function.arguments")


def _check_prompt(prompt: Any) -> None:
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) > 1:
            raise bad("a list of several prompts is not supported; send one", "prompt")
        return
    raise bad("`prompt` is required and must be a string", "prompt")
