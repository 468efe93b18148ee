"""The Responses API, outbound: a chat answer rendered as a Response object.

Ids are derived from the run's id (`resp_…`, `msg_…`, `fc_…_i`), so the object a client got,
its stream's events and `GET /v1/responses/{id}` later all name the same things.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.wire.responses import answer_message, response_id

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def message_id(run_id: str) -> str:
    return f"msg_{run_id}"


def call_item_id(run_id: str, index: int) -> str:
    return f"fc_{run_id}_{index}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + completion_tokens,
    }


def echo(model: str, chat: Mapping[str, Any], notes: Mapping[str, Any]) -> dict[str, Any]:
    """The request's settings as a Response object repeats them, from the chat body turnout ran
    (the same function serves the live answer and a later `GET`)."""
    messages = chat.get("messages") or []
    instructions = messages[0].get("content") if notes.get("instructions") and messages else None
    fmt: dict[str, Any] = {"type": "text"}
    rf = chat.get("response_format") or {}
    if rf.get("type") == "json_object":
        fmt = {"type": "json_object"}
    elif rf.get("type") == "json_schema":
        fmt = {"type": "json_schema", **(rf.get("json_schema") or {})}
    text: dict[str, Any] = {"format": fmt}
    if chat.get("verbosity"):
        text["verbosity"] = chat["verbosity"]
    choice = chat.get("tool_choice", "auto")
    if isinstance(choice, dict):
        choice = {"type": "function", "name": choice["function"]["name"]}
    effort = chat.get("reasoning_effort")
    return {
        "model": model,
        "instructions": instructions,
        "metadata": chat.get("metadata") or {},
        "parallel_tool_calls": chat.get("parallel_tool_calls", True),
        "temperature": chat.get("temperature"),
        "top_p": chat.get("top_p"),
        "tool_choice": choice,
        "tools": [_tool(t) for t in chat.get("tools") or []],
        "text": text,
        "max_output_tokens": chat.get("max_tokens"),
        "previous_response_id": notes.get("previous_response_id"),
        "store": notes.get("store", True),
        "truncation": "disabled",
        "reasoning": {"effort": effort, "summary": None} if effort else None,
        "user": chat.get("user"),
        "background": False,
    }


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function" or "function" not in tool:
        return tool
    fn = tool["function"]
    return {"type": "function", "strict": fn.get("strict"), "parameters": fn.get("parameters"),
            **{k: fn[k] for k in ("name", "description") if k in fn}}  # fmt: skip


def output_items(run_id: str, message: Mapping[str, Any] | None, status: str) -> list[Any]:
    """A message item for the text (or refusal), then one item per tool call."""
    message = message or {}
    out: list[Any] = []
    content = message.get("content")
    refusal = message.get("refusal")
    calls = message.get("tool_calls") or []
    if content or refusal or not calls:
        parts: list[dict[str, Any]] = []
        if content or not refusal:
            parts.append(text_part(content if isinstance(content, str) else ""))
        if refusal:
            parts.append({"type": "refusal", "refusal": refusal})
        out.append(message_item(run_id, parts, status))
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        out.append(call_item(run_id, i, call.get("id"), fn.get("name", ""), fn.get("arguments")))
    return out


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(run_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {"id": message_id(run_id), "type": "message", "role": "assistant", "status": status,
            "content": parts}  # fmt: skip


def call_item(
    run_id: str, index: int, call_id: str | None, name: str, arguments: str | None,
    status: str = "completed",
) -> dict[str, Any]:  # fmt: skip
    return {
        "id": call_item_id(run_id, index),
        "type": "function_call",
        "call_id": call_id or f"call_{run_id}_{index}",
        "name": name,
        "arguments": arguments or "",
        "status": status,
    }


def response_object(
    run_id: str,
    created: float,
    settings: Mapping[str, Any],
    *,
    status: str,
    output: list[Any] | None = None,
    finish: str | None = None,
    tokens: tuple[int, int] | None = None,
    error: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    incomplete = _INCOMPLETE.get(finish or "") if status == "incomplete" else None
    return {
        "id": response_id(run_id),
        "object": "response",
        "created_at": int(created),
        "status": status,
        "error": dict(error) if error else None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "output": output or [],
        "usage": usage(*tokens) if tokens is not None else None,
        **settings,
    }


def status_of(finish: str | None) -> str:
    return "incomplete" if finish in _INCOMPLETE else "completed"


def from_chat(
    run_id: str, created: float, settings: Mapping[str, Any], completion: Mapping[str, Any],
    tokens: tuple[int, int],
) -> dict[str, Any]:  # fmt: skip
    """The Response object for a (non-streamed) chat completion."""
    choices = completion.get("choices") or [{}]
    finish = choices[0].get("finish_reason") if isinstance(choices[0], dict) else None
    status = status_of(finish)
    output = output_items(run_id, answer_message(completion), status)
    return response_object(
        run_id, created, settings, status=status, output=output, finish=finish, tokens=tokens
    )


def from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The Response object for a recorded Responses request (`GET /v1/responses/{id}`)."""
    run_id = record["id"]
    notes = (record.get("attrs") or {}).get("responses") or {}
    chat = record.get("request_body") or {}
    settings = echo(notes.get("model") or record.get("model") or "", chat, notes)
    body = record.get("response_body")
    finish = None
    if isinstance(body, dict) and "choices" in body:
        choices = body.get("choices") or [{}]
        finish = choices[0].get("finish_reason") if isinstance(choices[0], dict) else None
    attempts = record.get("attempt_log") or []
    if finish is None and attempts:
        finish = attempts[-1].get("finish_reason")
    tokens = (record.get("prompt_tokens") or 0, record.get("completion_tokens") or 0)
    outcome = record.get("outcome")
    if outcome not in ("completed", "truncated"):
        error = {"code": "server_error", "message": record.get("error") or str(outcome)}
        return response_object(
            run_id, record["started"], settings, status="failed", tokens=tokens, error=error
        )
    status = status_of(finish)
    output = output_items(run_id, answer_message(body), status)
    return response_object(
        run_id, record["started"], settings, status=status, output=output, finish=finish,
        tokens=tokens,
    )  # fmt: skip
