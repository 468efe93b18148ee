"""Chat bodies as Responses API requests, and Responses answers as chat completions.

For deployments with `api: responses`: turnout's working body is chat-shaped, so it is mapped
out here and the answer mapped back. A chat field the Responses API cannot express is refused
(an UpstreamError of class client_error naming it), never dropped.
"""

from __future__ import annotations

from typing import Any

from turnout.backends.base import Failure, Operation, UpstreamError, Usage

# Chat fields with no Responses equivalent: refused when they carry a value.
_NOT_EXPRESSIBLE = (
    "stop", "seed", "logit_bias", "presence_penalty", "frequency_penalty", "logprobs",
    "top_logprobs", "modalities", "audio", "prediction", "functions", "function_call",
    "web_search_options", "best_of", "echo", "suffix",
)  # fmt: skip
_COPIED = ("temperature", "top_p", "parallel_tool_calls", "metadata", "user",
           "safety_identifier", "prompt_cache_key", "service_tier", "store")  # fmt: skip
_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def refused(field: str, why: str) -> UpstreamError:
    return UpstreamError(
        Failure.CLIENT_ERROR,
        f"`{field}` cannot be sent to a deployment called through the Responses API: {why}",
        status=400,
        code="unsupported_parameter",
        param=field,
    )


def to_responses(body: dict[str, Any], operation: Operation, model: str) -> dict[str, Any]:
    """The Responses request for a chat (or completions) body."""
    for key in _NOT_EXPRESSIBLE:
        value = body.get(key)
        if value not in (None, False) and not (key == "best_of" and value == 1):
            raise refused(key, "the Responses API has no such parameter")
    if body.get("n") not in (None, 1):
        raise refused("n", "it answers once per request")
    out: dict[str, Any] = {"model": model, "store": False}  # turnout keeps the conversation
    if operation is Operation.COMPLETION:
        out["input"] = str(body.get("prompt", ""))
    else:
        out["input"] = input_items(body.get("messages") or [])
    for key in _COPIED:
        if body.get(key) is not None:
            out[key] = body[key]
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        out["max_output_tokens"] = limit
    if body.get("tools"):
        out["tools"] = [_tool(t) for t in body["tools"]]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        out["tool_choice"] = {"type": "function", "name": choice["function"]["name"]}
    elif choice is not None:
        out["tool_choice"] = choice
    text: dict[str, Any] = {}
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        text["format"] = {"type": "json_object"}
    elif fmt.get("type") == "json_schema":
        text["format"] = {"type": "json_schema", **(fmt.get("json_schema") or {})}
    if body.get("verbosity"):
        text["verbosity"] = body["verbosity"]
    if text:
        out["text"] = text
    if body.get("reasoning_effort"):
        out["reasoning"] = {"effort": body["reasoning_effort"]}
    return out


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function" or "function" not in tool:
        return tool  # a built-in tool, as the client named it
    return {"type": "function", **tool["function"]}


def input_items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        content = m.get("content")
        if role == "tool":
            items.append({"type": "function_call_output", "call_id": m.get("tool_call_id"),
                          "output": _text(content)})  # fmt: skip
            continue
        if role == "assistant":
            text = _text(content)
            if text:
                items.append({"role": "assistant", "content": text})
            for call in m.get("tool_calls") or ():
                fn = call.get("function") or {}
                items.append({"type": "function_call", "call_id": call.get("id"),
                              "name": fn.get("name"),
                              "arguments": fn.get("arguments", "")})  # fmt: skip
            continue
        items.append({"role": role, "content": _content(content)})
    return items


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _content(content: Any) -> Any:
    if not isinstance(content, list):
        return content if isinstance(content, str) else ""
    parts: list[dict[str, Any]] = []
    for p in content:
        if p.get("type") == "text":
            parts.append({"type": "input_text", "text": p.get("text", "")})
        elif p.get("type") == "image_url":
            image = p.get("image_url") or {}
            part = {"type": "input_image", "image_url": image.get("url")}
            if image.get("detail"):
                part["detail"] = image["detail"]
            parts.append(part)
        else:
            raise refused("messages", f"content part {p.get('type')!r} has no Responses form")
    return parts


# -- answers ------------------------------------------------------------------------------------


def failure_of(code: Any) -> Failure:
    if code == "rate_limit_exceeded":
        return Failure.RATE_LIMITED
    if code == "context_length_exceeded":
        return Failure.CONTEXT_EXCEEDED
    if code == "invalid_prompt":
        return Failure.CLIENT_ERROR
    return Failure.SERVER_ERROR


def finish_of(response: dict[str, Any], has_calls: bool) -> str:
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        return _FINISH.get(reason, "length")
    return "tool_calls" if has_calls else "stop"


def usage_of(response: dict[str, Any]) -> Usage:
    u = response.get("usage")
    if not isinstance(u, dict):
        return Usage()
    return Usage.from_body(
        {"prompt_tokens": u.get("input_tokens"), "completion_tokens": u.get("output_tokens")}
    )


def to_chat(response: Any, operation: Operation) -> dict[str, Any]:
    """The chat completion (or text completion) for a Responses answer; raises UpstreamError."""
    if not isinstance(response, dict) or not isinstance(response.get("output"), list):
        raise UpstreamError(Failure.MALFORMED_RESPONSE, "upstream answer has no `output` list")
    if response.get("status") == "failed":
        err = response.get("error") or {}
        raise UpstreamError(
            failure_of(err.get("code")),
            f"upstream response failed: {str(err.get('message') or 'no reason given')[:500]}",
            code=err.get("code") if isinstance(err.get("code"), str) else None,
        )
    text, refusal, calls = "", "", []
    for item in response["output"]:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    text += str(part.get("text", ""))
                elif part.get("type") == "refusal":
                    refusal += str(part.get("refusal", ""))
        elif item.get("type") == "function_call":
            calls.append({"id": item.get("call_id"), "type": "function",
                          "function": {"name": item.get("name"),
                                       "arguments": item.get("arguments", "")}})  # fmt: skip
    finish = finish_of(response, bool(calls))
    usage = usage_of(response)
    envelope = {
        "id": response.get("id") or "",
        "created": int(response.get("created_at") or 0),
        "model": response.get("model") or "",
        "usage": {"prompt_tokens": usage.prompt_tokens,
                  "completion_tokens": usage.completion_tokens,
                  "total_tokens": usage.total_tokens},
    }  # fmt: skip
    if operation is Operation.COMPLETION:
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        return {"object": "text_completion", "choices": [choice], **envelope}
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    if refusal:
        message["refusal"] = refusal
    return {"object": "chat.completion", "choices": [{"index": 0, "message": message,
            "finish_reason": finish}], **envelope}  # fmt: skip
