"""Anthropic's Messages format, inbound: check a `/v1/messages` body and map it onto the chat shape
every layer inside works on.

A field or block the chat shape cannot carry is refused with a 400 that names it; nothing is
dropped on the way in except `cache_control`, a caching hint that changes no answer (the record
lists it under `ignored`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from turnout.backends.anthropic_shape import TOOL_ERROR_MARK
from turnout.backends.base import Operation
from turnout.errors import ApiError
from turnout.lifecycle.request import Request
from turnout.lifecycle.validate import is_structured, schema_error
from turnout.server.fields import (
    MAX_ID,
    array,
    bad,
    boolean,
    depth_error,
    integer,
    name,
    number,
    obj,
    one_of,
    quote,
    string,
)
from turnout.server.wire import MAX_OUTPUT_TOKENS, MAX_STOP, MAX_TOOLS

WIRE = "messages"
_TOP = frozenset(
    {"model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p",
     "top_k", "stream", "metadata", "tools", "tool_choice", "thinking", "service_tier"}
)  # fmt: skip
_NOT_SERVED = {
    "container": "code-execution containers",
    "mcp_servers": "remote MCP servers",
    "context_management": "context management",
    "output_format": "structured output (`output_format`)",
}


def _refuse(what: str, param: str) -> ApiError:
    return bad(f"{what} is not supported by turnout's /v1/messages", param, "unsupported")


def check(body: dict[str, Any], *, count_only: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The chat body for a Messages body, and what was accepted but not carried; raises ApiError.

    `count_only`: a `/v1/messages/count_tokens` body, which has no `max_tokens`.
    """
    problem = depth_error(body)
    if problem is not None:
        raise bad(problem, code="too_deep")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("`model` is required and must be a non-empty string", "model")
    string(MAX_ID)(model, "model")
    for key in body:
        if key in _NOT_SERVED:
            raise _refuse(f"`{key}` ({_NOT_SERVED[key]})", key)
        if key not in _TOP:
            raise _refuse(f"the field `{quote(key)[1:-1]}`", key)
    ignored: set[str] = set()
    chat: dict[str, Any] = {"model": model}
    messages = _system(body.get("system"), ignored)
    messages += _turns(body.get("messages"), ignored)
    chat["messages"] = messages
    if not count_only or body.get("max_tokens") is not None:
        integer(1, MAX_OUTPUT_TOKENS)(body.get("max_tokens"), "max_tokens")
        chat["max_tokens"] = body["max_tokens"]
    _sampling(body, chat)
    if body.get("stream") is not None:
        boolean(body["stream"], "stream")
        if body["stream"]:
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}  # message_delta carries usage
    _metadata(body.get("metadata"), chat)
    thinking = body.get("thinking")
    if thinking is not None and obj(thinking, "thinking").get("type") != "disabled":
        raise _refuse("extended thinking", "thinking")
    if body.get("service_tier") is not None:
        one_of("auto", "standard_only")(body["service_tier"], "service_tier")
    if body.get("tools") is not None:
        tools = array(body["tools"], "tools", limit=MAX_TOOLS)
        if tools:
            chat["tools"] = [_tool(t, f"tools[{i}]", ignored) for i, t in enumerate(tools)]
    _tool_choice(body.get("tool_choice"), chat)
    return chat, sorted(ignored)


def to_request(chat: dict[str, Any], body: dict[str, Any], headers: Mapping[str, str]) -> Request:
    """The one typed request: `chat` as `check` built it from the client's Messages `body`."""
    return Request(
        operation=Operation.CHAT,
        model=chat["model"],
        body=chat,
        stream=chat.get("stream") is True,
        wants_usage=True,
        max_tokens=chat["max_tokens"],
        structured=is_structured(chat),
        headers=headers,
        wire=WIRE,
        original=body,
    )


# -- top-level fields -----------------------------------------------------------------------------


def _sampling(body: dict[str, Any], chat: dict[str, Any]) -> None:
    for key, check_value in (("temperature", number(0.0, 1.0)), ("top_p", number(0.0, 1.0))):
        if body.get(key) is not None:
            check_value(body[key], key)
            chat[key] = body[key]
    if body.get("top_k") is not None:
        integer(0, 2**31 - 1)(body["top_k"], "top_k")
        chat["top_k"] = body["top_k"]
    stops = body.get("stop_sequences")
    if stops is not None:
        for i, s in enumerate(array(stops, "stop_sequences", limit=MAX_STOP)):
            string(1000, nonempty=True)(s, f"stop_sequences[{i}]")
        if stops:
            chat["stop"] = list(stops)


def _metadata(meta: Any, chat: dict[str, Any]) -> None:
    if meta is None:
        return
    for key, value in obj(meta, "metadata").items():
        if key != "user_id":
            raise bad(f"`metadata` takes only `user_id`; got {quote(key)}", "metadata")
        if value is not None:
            string(MAX_ID)(value, "metadata.user_id")
            chat["user"] = value


def _tool(tool: Any, where: str, ignored: set[str]) -> dict[str, Any]:
    spec = obj(tool, where)
    kind = spec.get("type")
    if kind not in (None, "custom"):
        raise _refuse(f"the built-in tool {quote(kind)} (function tools only)", f"{where}.type")
    name(spec.get("name"), f"{where}.name")
    schema = obj(spec.get("input_schema"), f"{where}.input_schema")
    problem = schema_error(schema)
    if problem:
        raise bad(f"`{where}.input_schema` is not a valid JSON Schema: {problem}", where)
    fn: dict[str, Any] = {"name": spec["name"], "parameters": schema}
    if spec.get("description") is not None:
        string()(spec["description"], f"{where}.description")
        fn["description"] = spec["description"]
    if spec.get("strict") is not None:
        boolean(spec["strict"], f"{where}.strict")
        fn["strict"] = spec["strict"]
    if spec.get("cache_control") is not None:
        ignored.add("cache_control")
    for key in spec:
        if key not in ("type", "name", "input_schema", "description", "strict", "cache_control"):
            raise _refuse(f"`{where}.{quote(key)[1:-1]}`", f"{where}.{key}")
    return {"type": "function", "function": fn}


def _tool_choice(choice: Any, chat: dict[str, Any]) -> None:
    if choice is None:
        return
    spec = obj(choice, "tool_choice")
    kind = spec.get("type")
    one_of("auto", "any", "tool", "none")(kind, "tool_choice.type")
    if kind != "none" and not chat.get("tools"):
        raise bad("`tool_choice` needs `tools`", "tool_choice")
    if kind == "tool":
        name(spec.get("name"), "tool_choice.name")
        if spec["name"] not in {t["function"]["name"] for t in chat["tools"]}:
            raise bad(
                f"`tool_choice.name` {quote(spec['name'])} is not one of `tools`",
                "tool_choice.name",
            )
        chat["tool_choice"] = {"type": "function", "function": {"name": spec["name"]}}
    else:
        chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if spec.get("disable_parallel_tool_use") is not None:
        boolean(spec["disable_parallel_tool_use"], "tool_choice.disable_parallel_tool_use")
        if spec["disable_parallel_tool_use"] and chat.get("tools"):
            chat["parallel_tool_calls"] = False


# -- system and turns -----------------------------------------------------------------------------


def _text_blocks(blocks: list[Any], where: str, ignored: set[str]) -> str:
    out = []
    for i, block in enumerate(blocks):
        at = f"{where}[{i}]"
        if obj(block, at).get("type") != "text":
            raise bad(f"`{at}.type` must be text; got {quote(block.get('type'))}", f"{at}.type")
        out.append(_text(block, at, ignored))
    return "".join(out)


def _text(block: dict[str, Any], where: str, ignored: set[str]) -> str:
    string()(block.get("text"), f"{where}.text")
    if block.get("cache_control") is not None:
        ignored.add("cache_control")
    if block.get("citations"):
        raise _refuse("citations", f"{where}.citations")
    text: str = block["text"]
    return text


def _system(system: Any, ignored: set[str]) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        text = system
    else:
        text = "\n\n".join(
            _text_blocks([b], f"system[{i}]", ignored)
            for i, b in enumerate(array(system, "system"))
        )
    return [{"role": "system", "content": text}] if text else []


def _turns(messages: Any, ignored: set[str]) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise bad("`messages` is required and must be a non-empty list", "messages")
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        role = obj(msg, where).get("role")
        one_of("user", "assistant")(role, f"{where}.role")
        content = msg.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        blocks = array(content, f"{where}.content")
        if role == "user":
            out += _user(blocks, f"{where}.content", ignored)
        else:
            out.append(_assistant(blocks, f"{where}.content", ignored))
    return out


def _user(blocks: list[Any], where: str, ignored: set[str]) -> list[dict[str, Any]]:
    """Tool results become chat `tool` messages, ahead of whatever else the user said."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        at = f"{where}[{i}]"
        kind = obj(block, at).get("type")
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, at, ignored)})
        elif kind == "image":
            parts.append(_image(block, at))
        elif kind == "tool_result":
            results.append(_tool_result(block, at, ignored))
        else:
            one_of("text", "image", "tool_result")(kind, f"{at}.type")
    out = results
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        out.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    if not out:
        raise bad(f"`{where}` must not be empty", where)
    return out


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = obj(block.get("source"), f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        media = source.get("media_type")
        one_of("image/jpeg", "image/png", "image/gif", "image/webp")(
            media, f"{where}.source.media_type"
        )
        string(nonempty=True)(source.get("data"), f"{where}.source.data")
        url = f"data:{media};base64,{source['data']}"
    elif kind == "url":
        string(nonempty=True)(source.get("url"), f"{where}.source.url")
        url = source["url"]
    else:
        raise bad(
            f"`{where}.source.type` must be base64 or url; got {quote(kind)}",
            f"{where}.source.type",
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(block: dict[str, Any], where: str, ignored: set[str]) -> dict[str, Any]:
    string(MAX_ID, nonempty=True)(block.get("tool_use_id"), f"{where}.tool_use_id")
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        for j, part in enumerate(array(content, f"{where}.content")):
            if obj(part, f"{where}.content[{j}]").get("type") == "image":
                raise _refuse("an image inside a tool result", f"{where}.content[{j}]")
        text = _text_blocks(content, f"{where}.content", ignored)
    if block.get("is_error") is not None:
        boolean(block["is_error"], f"{where}.is_error")
        if block["is_error"]:
            text = TOOL_ERROR_MARK + text
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}


def _assistant(blocks: list[Any], where: str, ignored: set[str]) -> dict[str, Any]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        at = f"{where}[{i}]"
        kind = obj(block, at).get("type")
        if kind == "text":
            text.append(_text(block, at, ignored))
        elif kind == "tool_use":
            string(MAX_ID, nonempty=True)(block.get("id"), f"{at}.id")
            name(block.get("name"), f"{at}.name")
            args = orjson.dumps(obj(block.get("input"), f"{at}.input")).decode()
            fn = {"name": block["name"], "arguments": args}
            calls.append({"id": block["id"], "type": "function", "function": fn})
        elif kind in ("thinking", "redacted_thinking"):
            raise _refuse("thinking blocks", f"{at}.type")
        else:
            one_of("text", "tool_use")(kind, f"{at}.type")
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(text) or (None if calls else "")}
    if calls:
        msg["tool_calls"] = calls
    return msg
