"""The Responses API, inbound: check a `POST /v1/responses` body and map it onto a chat body.

Every error names the Responses field (`param`), never the chat field it would have become.
The conversation of `previous_response_id` comes from the record (`history_of`); what cannot
apply here (`include`, `reasoning` where the upstream has none) is accepted and noted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.backends.base import Operation
from turnout.lifecycle.request import Request
from turnout.lifecycle.validate import is_structured, schema_error
from turnout.server.fields import (
    MAX_ID,
    anything,
    array,
    bad,
    boolean,
    depth_error,
    fields,
    integer,
    name,
    number,
    obj,
    one_of,
    quote,
    string,
)
from turnout.server.wire import MAX_OUTPUT_TOKENS, MAX_TOOLS, _metadata

WIRE = "responses"
# Tools the upstream runs itself: only a deployment called through the Responses API can.
BUILTIN_TOOLS = frozenset(
    {
        "web_search", "web_search_preview", "web_search_2025_08_26",
        "web_search_preview_2025_03_11", "file_search", "computer_use", "computer_use_preview",
        "code_interpreter", "image_generation", "mcp", "local_shell", "shell",
        "apply_patch", "custom",
    }
)  # fmt: skip
_ROLES = ("user", "assistant", "system", "developer")
_INCLUDE = 32


@dataclass(slots=True)
class Turn:
    """One Responses request as turnout runs it: a chat body, and what the record should say."""

    chat: dict[str, Any]
    previous_response_id: str | None = None
    store: bool = True
    notes: dict[str, Any] = field(default_factory=dict)  # ids and flags only, never content


# -- checks -------------------------------------------------------------------------------------


def check(body: dict[str, Any]) -> None:
    """Raise ApiError naming the first wrong field of a Responses body."""
    problem = depth_error(body)
    if problem is not None:
        raise bad(problem, code="too_deep")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("`model` is required and must be a non-empty string", "model")
    if len(model) > MAX_ID:
        raise bad(f"`model` is longer than {MAX_ID} characters", "model")
    for key, value in body.items():
        if key in _UNSUPPORTED and value is not None:
            raise bad(f"`{key}` is not supported here: {_UNSUPPORTED[key]}", key, "unsupported")
        checker = _TOP.get(key)
        if checker is None:
            raise bad(f"unknown parameter `{quote(key)[1:-1]}`", key, "unknown_parameter")
        if value is not None:
            checker(value, key)
    if body.get("input") is None and body.get("previous_response_id") is None:
        raise bad("`input` is required", "input")
    _check_tool_choice(body)


def _input(value: Any, where: str) -> None:
    if isinstance(value, str):
        return
    for i, item in enumerate(array(value, where, nonempty=True)):
        _item(obj(item, f"{where}[{i}]"), f"{where}[{i}]")


def _item(item: dict[str, Any], at: str) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise bad(
                f"`{at}.role` must be one of {', '.join(_ROLES)}; got {quote(role)}", f"{at}.role"
            )
        content = item.get("content")
        if isinstance(content, str):
            return
        for j, part in enumerate(array(content, f"{at}.content")):
            _part(obj(part, f"{at}.content[{j}]"), role, f"{at}.content[{j}]")
    elif kind == "function_call":
        string(MAX_ID, nonempty=True)(item.get("call_id"), f"{at}.call_id")
        name(item.get("name"), f"{at}.name")
        string()(item.get("arguments"), f"{at}.arguments")
    elif kind == "function_call_output":
        string(MAX_ID, nonempty=True)(item.get("call_id"), f"{at}.call_id")
        output = item.get("output")
        if not isinstance(output, str):
            for j, part in enumerate(array(output, f"{at}.output")):
                _part(obj(part, f"{at}.output[{j}]"), "tool", f"{at}.output[{j}]")
    elif kind == "reasoning":
        pass  # an earlier turn's reasoning, passed back: nothing here can use it (noted)
    elif kind == "item_reference":
        raise bad(
            f"`{at}` is an item_reference; send the item itself, or previous_response_id",
            f"{at}.type",
            "unsupported",
        )
    else:
        raise bad(
            f"`{at}.type` {quote(kind)} is not supported here (message, function_call,"
            " function_call_output, reasoning)",
            f"{at}.type",
            "unsupported",
        )


_PARTS = {
    "user": ("input_text", "input_image"),
    "system": ("input_text",),
    "developer": ("input_text",),
    "assistant": ("output_text", "refusal", "input_text"),
    "tool": ("input_text",),
}


def _part(part: dict[str, Any], role: str, at: str) -> None:
    kind = part.get("type")
    allowed = _PARTS[role]
    if kind not in allowed:
        hint = " (files are not supported here)" if kind == "input_file" else ""
        raise bad(
            f"`{at}.type` must be one of {', '.join(allowed)} in a {role} item;"
            f" got {quote(kind)}{hint}",
            f"{at}.type",
        )
    if kind == "input_image":
        if part.get("image_url") in (None, ""):
            raise bad(
                f"`{at}.image_url` is required (file_id images are not supported here)",
                f"{at}.image_url",
            )
        string(nonempty=True)(part["image_url"], f"{at}.image_url")
        if part.get("detail") is not None:
            one_of("auto", "low", "high")(part["detail"], f"{at}.detail")
    else:
        string()(part.get("refusal" if kind == "refusal" else "text"), f"{at}.text")


def _tools(value: Any, where: str) -> None:
    for i, tool in enumerate(array(value, where, limit=MAX_TOOLS)):
        at = f"{where}[{i}]"
        kind = obj(tool, at).get("type")
        if kind in BUILTIN_TOOLS:
            continue  # allowed only where every deployment speaks Responses: see `builtin_tools`
        if kind != "function":
            raise bad(f"`{at}.type` {quote(kind)} is not a tool type turnout knows", f"{at}.type")
        name(tool.get("name"), f"{at}.name")
        fields(tool, at, {"description": string(), "strict": boolean})
        if tool.get("parameters") is not None:
            problem = schema_error(tool["parameters"])
            if problem:
                raise bad(
                    f"`{at}.parameters` is not a valid JSON Schema: {problem}", f"{at}.parameters"
                )


def _check_tool_choice(body: dict[str, Any]) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    tools = body.get("tools") or []
    if isinstance(choice, str):
        one_of("none", "auto", "required")(choice, "tool_choice")
        if choice == "required" and not tools:
            raise bad("`tool_choice` required needs `tools`", "tool_choice")
        return
    spec = obj(choice, "tool_choice")
    if spec.get("type") != "function":
        raise bad(
            "`tool_choice.type` must be function (or tool_choice a string)", "tool_choice.type"
        )
    name(spec.get("name"), "tool_choice.name")
    names = {t.get("name") for t in tools if t.get("type") == "function"}
    if spec["name"] not in names:
        raise bad(
            f"`tool_choice.name` {quote(spec['name'])} is not one of `tools`", "tool_choice.name"
        )


def _text(value: Any, where: str) -> None:
    text = obj(value, where)
    fields(text, where, {"verbosity": one_of("low", "medium", "high")})
    fmt = text.get("format")
    if fmt is None:
        return
    fmt = obj(fmt, f"{where}.format")
    at = f"{where}.format"
    one_of("text", "json_object", "json_schema")(fmt.get("type"), f"{at}.type")
    if fmt["type"] != "json_schema":
        return
    name(fmt.get("name"), f"{at}.name")
    fields(fmt, at, {"description": string(), "strict": boolean})
    problem = schema_error(fmt.get("schema"))
    if problem:
        raise bad(f"`{at}.schema` is not a valid JSON Schema: {problem}", f"{at}.schema")


def _include(value: Any, where: str) -> None:
    for i, item in enumerate(array(value, where, limit=_INCLUDE)):
        string(128)(item, f"{where}[{i}]")


def _reasoning(value: Any, where: str) -> None:
    fields(
        obj(value, where),
        where,
        {
            "effort": one_of("none", "minimal", "low", "medium", "high", "xhigh"),
            "summary": one_of("auto", "concise", "detailed"),
            "generate_summary": one_of("auto", "concise", "detailed"),
        },
    )


def _previous(value: Any, where: str) -> None:
    string(MAX_ID, nonempty=True)(value, where)
    if response_run_id(value) is None:
        raise bad(f"`{where}` {quote(value)} is not a response id of this gateway", where)


_TOP: dict[str, Any] = {
    "model": anything,  # checked first
    "input": _input,
    "instructions": string(),
    "stream": boolean,
    "stream_options": lambda v, w: fields(obj(v, w), w, {"include_obfuscation": boolean}),
    "max_output_tokens": integer(1, MAX_OUTPUT_TOKENS),
    "temperature": number(0.0, 2.0),
    "top_p": number(0.0, 1.0),
    "tools": _tools,
    "tool_choice": anything,  # checked against `tools` afterwards
    "parallel_tool_calls": boolean,
    "text": _text,
    "metadata": _metadata,
    "store": boolean,
    "previous_response_id": _previous,
    "include": _include,
    "reasoning": _reasoning,
    "truncation": one_of("auto", "disabled"),
    "user": string(MAX_ID),
    "safety_identifier": string(MAX_ID),
    "prompt_cache_key": string(MAX_ID),
    "service_tier": one_of("auto", "default", "flex", "scale", "priority"),
}
_UNSUPPORTED = {
    "background": "responses are answered while the request is open",
    "conversation": "use previous_response_id",
    "prompt": "stored prompt templates are not served; send `instructions` and `input`",
    "top_logprobs": "log probabilities are not rendered in Responses output here",
    "max_tool_calls": "built-in tool call limits are not enforced here",
}


# -- ids ----------------------------------------------------------------------------------------


def response_id(run_id: str) -> str:
    return f"resp_{run_id}"


def response_run_id(rid: Any) -> str | None:
    """The run behind a response id; None if it is not one of ours."""
    if not isinstance(rid, str) or not rid.startswith("resp_"):
        return None
    run_id = rid[5:]
    ok = 0 < len(run_id) <= 64 and all(c in "0123456789abcdef" for c in run_id)
    return run_id if ok else None


# -- the chat body ------------------------------------------------------------------------------


def builtin_tools(body: Mapping[str, Any]) -> list[tuple[int, str]]:
    """(index, type) of the built-in tools a request names."""
    tools = body.get("tools") or []
    return [(i, t["type"]) for i, t in enumerate(tools) if t.get("type") in BUILTIN_TOOLS]


def to_chat(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> Turn:
    """The chat body for a checked Responses body; `history` is the earlier turns' messages."""
    chat: dict[str, Any] = {"model": body["model"]}
    notes: dict[str, Any] = {}
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
        notes["instructions"] = True
    messages += history or []
    notes["input_from"] = len(messages)
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif items:
        skipped = _items(items, messages)
        if skipped:
            notes["reasoning_items_ignored"] = skipped
    chat["messages"] = messages
    _copy(body, chat)
    ignored = [k for k in ("include", "reasoning") if body.get(k)]
    if ignored:
        notes["accepted_not_applied"] = ignored
    if body.get("truncation") == "auto":
        notes["truncation_auto"] = "not applied: a prompt too long for a deployment fails over"
    turn = Turn(chat, body.get("previous_response_id"), body.get("store") is not False, notes)
    if not turn.store:
        notes["store"] = False
    if turn.previous_response_id is not None:
        notes["previous_response_id"] = turn.previous_response_id
    return turn


def _copy(body: dict[str, Any], chat: dict[str, Any]) -> None:
    for key in ("temperature", "top_p", "parallel_tool_calls", "metadata", "user",
                "safety_identifier", "prompt_cache_key", "service_tier"):  # fmt: skip
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("stream") is True:
        chat["stream"] = True
    tools = body.get("tools")
    if tools:
        chat["tools"] = [_chat_tool(t) for t in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice is not None and (tools or choice == "none"):
        chat["tool_choice"] = choice
    text = body.get("text") or {}
    fmt = text.get("format")
    if fmt and fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif fmt and fmt.get("type") == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        chat["response_format"] = {"type": "json_schema", "json_schema": spec}
    if text.get("verbosity"):
        chat["verbosity"] = text["verbosity"]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort:
        chat["reasoning_effort"] = effort  # forwarded where the deployment takes it


def _chat_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return tool  # built-in: passed through, as only Responses upstreams are allowed
    fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    if fn.get("strict") is None:
        fn.pop("strict", None)
    return {"type": "function", "function": fn}


def _items(items: list[dict[str, Any]], messages: list[dict[str, Any]]) -> int:
    """Append the chat messages for input items; returns how many reasoning items were left out."""
    skipped = 0
    for item in items:
        kind = item.get("type", "message")
        if kind == "reasoning":
            skipped += 1
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last is not None and last["role"] == "assistant" and _plain(last):
                last["tool_calls"] = [call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            if not isinstance(output, str):
                output = "".join(p.get("text", "") for p in output)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
        else:
            messages.append(_message(item))
    return skipped


def _plain(message: dict[str, Any]) -> bool:
    return isinstance(message.get("content"), str) and "tool_calls" not in message


def _message(item: dict[str, Any]) -> dict[str, Any]:
    role, content = item["role"], item["content"]
    if isinstance(content, str):
        return {"role": role, "content": content}
    if role == "assistant":
        text = "".join(p.get("text", "") for p in content if p["type"] != "refusal")
        out: dict[str, Any] = {"role": role, "content": text}
        refusal = "".join(p.get("refusal", "") for p in content if p["type"] == "refusal")
        if refusal:
            out["refusal"] = refusal
        return out
    if all(p["type"] == "input_text" for p in content):
        return {"role": role, "content": "".join(p["text"] for p in content)}
    parts: list[dict[str, Any]] = []
    for p in content:
        if p["type"] == "input_text":
            parts.append({"type": "text", "text": p["text"]})
        else:
            image = {"url": p["image_url"]}
            if p.get("detail"):
                image["detail"] = p["detail"]
            parts.append({"type": "image_url", "image_url": image})
    return {"role": role, "content": parts}


def history_of(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The conversation a recorded Responses request ended with: its messages and its answer,
    less its own instructions (which, as OpenAI specifies, do not carry over)."""
    body = record.get("request_body")
    messages = list(body.get("messages") or []) if isinstance(body, dict) else []
    attrs = record.get("attrs") or {}
    if (attrs.get("responses") or {}).get("instructions") and messages:
        messages = messages[1:]
    answer = answer_message(record.get("response_body"))
    if answer is not None:
        messages.append(answer)
    return messages


def answer_message(response_body: Any) -> dict[str, Any] | None:
    """The assistant message of a recorded answer: a chat completion, or a streamed message."""
    if not isinstance(response_body, dict):
        return None
    if "choices" in response_body:
        choices = response_body.get("choices") or [{}]
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
    else:
        message = response_body
    if not isinstance(message, dict):
        return None
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        out["tool_calls"] = message["tool_calls"]
    return out


def to_request(turn: Turn, body: dict[str, Any], headers: Mapping[str, str]) -> Request:
    """The one typed request; the stream always carries usage (`response.completed` needs it)."""
    chat = turn.chat
    limit = chat.get("max_tokens")
    return Request(
        operation=Operation.CHAT,
        model=chat["model"],
        body={**chat, "messages": list(chat["messages"])},
        stream=chat.get("stream") is True,
        wants_usage=True,
        max_tokens=limit if isinstance(limit, int) else None,
        structured=is_structured(chat),
        headers=headers,
        wire=WIRE,
        original=body,
    )
