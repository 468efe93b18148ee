"""Chat completions ↔ Anthropic Messages, for a `kind: anthropic` upstream.

The request path is OpenAI-chat shaped; this module turns a chat body into a Messages body and
Messages answers (whole or streamed) back into chat completions and chunks. A chat feature the
Messages API cannot express is refused (`client_error`, 400) rather than dropped.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from turnout.backends.base import Failure, UpstreamError

# Sent when the client set no limit: Messages requires one.
DEFAULT_MAX_TOKENS = 4096
# A tool result that reported an error keeps the flag across the chat shape (which has none).
TOOL_ERROR_MARK = "[tool error] "

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Chat fields a Messages request cannot carry; sent with a value that changes the answer: 400.
_INEXPRESSIBLE = (
    "logprobs", "top_logprobs", "logit_bias", "seed", "prediction", "audio",
    "web_search_options", "functions", "function_call", "reasoning_effort", "verbosity",
    "suffix", "echo", "best_of",
)  # fmt: skip


def refused(message: str, param: str | None = None) -> UpstreamError:
    return UpstreamError(
        Failure.CLIENT_ERROR,
        f"the Anthropic Messages API cannot express this: {message}",
        status=400,
        code="unsupported_by_upstream",
        param=param,
    )


def messages_body(chat: dict[str, Any], model: str) -> tuple[dict[str, Any], str]:
    """The Messages body for a chat body, and the whitespace cut from a trailing prefill.

    Anthropic refuses a final assistant message ending in whitespace; the caller strips what the
    continuation repeats of it.
    """
    for key in _INEXPRESSIBLE:
        if chat.get(key) not in (None, False, 0):
            raise refused(f"`{key}`", key)
    for key in ("presence_penalty", "frequency_penalty"):
        if chat.get(key) not in (None, 0, 0.0):
            raise refused(f"`{key}` other than 0", key)
    if chat.get("n") not in (None, 1):
        raise refused("`n` other than 1", "n")
    if chat.get("modalities") not in (None, ["text"]):
        raise refused("output modalities other than text", "modalities")
    fmt = chat.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        raise refused(f"`response_format` {fmt.get('type')}", "response_format")
    system, messages, tail = _messages(chat.get("messages") or [])
    limit = chat.get("max_completion_tokens") or chat.get("max_tokens") or DEFAULT_MAX_TOKENS
    out: dict[str, Any] = {"model": model, "max_tokens": limit, "messages": messages}
    if system:
        out["system"] = system
    temperature = chat.get("temperature")
    if temperature is not None:
        if temperature > 1:
            raise refused("`temperature` above 1 (its range is 0 to 1)", "temperature")
        out["temperature"] = temperature
    for key in ("top_p", "top_k"):
        if chat.get(key) is not None:
            out[key] = chat[key]
    stop = chat.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    user = chat.get("user") or chat.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if chat.get("tools"):
        out["tools"] = [_tool(t) for t in chat["tools"]]
    choice = _tool_choice(chat.get("tool_choice"), chat.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    return out, tail


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function") or {}
    out: dict[str, Any] = {
        "name": fn.get("name"),
        "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
    }
    if fn.get("description"):
        out["description"] = fn["description"]
    if fn.get("strict"):
        out["strict"] = True
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None
    if choice is None:
        out = None
    elif isinstance(choice, str):
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    else:
        out = {"type": "tool", "name": choice["function"]["name"]}
    if parallel is False:
        out = dict(out or {"type": "auto"}, disable_parallel_tool_use=True)
    return out


def _text_of(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.get("type") not in ("text", "refusal"):
            raise refused(f"a {part.get('type')} part in {where}", where)
        parts.append(part.get("text") or part.get("refusal") or "")
    return "".join(parts)


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for part in content or ():
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "image_url":
            blocks.append(_image((part.get("image_url") or {}).get("url") or "", where))
        else:
            raise refused(f"a {kind} part in {where}", where)
    return blocks


def _image(url: str, where: str) -> dict[str, Any]:
    if url.startswith("data:"):
        head, _, data = url[5:].partition(",")
        media, _, encoding = head.partition(";")
        if encoding != "base64":
            raise refused("an image data URL that is not base64", where)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _assistant_blocks(msg: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = _text_of(msg.get("content"), where)
    if text:
        blocks.append({"type": "text", "text": text})
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") or {}
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            raise refused("tool-call arguments that are not a JSON object", where)
        blocks.append(
            {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": args}
        )
    return blocks


def _tool_result(msg: dict[str, Any], where: str) -> dict[str, Any]:
    text = _text_of(msg.get("content"), where)
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.get("tool_call_id")}
    if text.startswith(TOOL_ERROR_MARK):
        text, block["is_error"] = text[len(TOOL_ERROR_MARK) :], True
    block["content"] = text
    return block


def _messages(chat: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]], str]:
    """System text, Messages turns (same-role neighbours merged), whitespace cut off a prefill."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(chat):
        role, where = msg.get("role"), f"messages[{i}]"
        if role in ("system", "developer"):
            if turns:
                raise refused("a system message after the conversation began", where)
            system.append(_text_of(msg.get("content"), where))
            continue
        if role == "user":
            blocks, speaker = _user_blocks(msg.get("content"), where), "user"
        elif role == "tool":
            blocks, speaker = [_tool_result(msg, where)], "user"
        elif role == "assistant":
            blocks, speaker = _assistant_blocks(msg, where), "assistant"
        else:
            raise refused(f"a {role} message", where)
        if turns and turns[-1]["role"] == speaker:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": speaker, "content": blocks})
    tail = ""
    last = turns[-1] if turns else None
    if last is not None and last["role"] == "assistant" and last["content"]:
        end = last["content"][-1]
        if end["type"] == "text":
            kept = end["text"].rstrip()
            tail = end["text"][len(kept) :]
            if kept:
                end["text"] = kept
            else:
                last["content"].pop()
        if not last["content"]:
            turns.pop()
    return "\n\n".join(s for s in system if s), turns, tail


# -- answers back into chat completions ----------------------------------------------------------


def chat_usage(usage: Any) -> dict[str, Any]:
    """Anthropic counts cached input apart; chat's prompt_tokens is all of the input."""
    u = usage if isinstance(usage, dict) else {}

    def n(key: str) -> int:
        v = u.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0

    cached = n("cache_read_input_tokens")
    prompt = n("input_tokens") + n("cache_creation_input_tokens") + cached
    out = {"prompt_tokens": prompt, "completion_tokens": n("output_tokens")}
    out["total_tokens"] = out["prompt_tokens"] + out["completion_tokens"]
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def _choice_end(stop_reason: Any, stop_sequence: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"finish_reason": STOP_REASONS.get(stop_reason, "stop")}
    if isinstance(stop_sequence, str):
        out["stop_reason"] = stop_sequence  # which stop matched, where vLLM puts it
    return out


def chat_completion(msg: Any) -> dict[str, Any]:
    """A Messages answer as a chat completion; `malformed_response` when it is not one."""
    if not isinstance(msg, dict) or not isinstance(msg.get("content"), list):
        raise UpstreamError(Failure.MALFORMED_RESPONSE, "upstream answer is not a Messages object")
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in msg["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            text.append(block["text"])
        elif kind == "tool_use":
            args = orjson.dumps(block.get("input") or {}).decode()
            fn = {"name": block.get("name"), "arguments": args}
            calls.append({"id": block.get("id"), "type": "function", "function": fn})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": msg.get("id") or "msg",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": msg.get("model") or "",
        "choices": [
            {
                "index": 0,
                "message": message,
                **_choice_end(msg.get("stop_reason"), msg.get("stop_sequence")),
            }
        ],
        "usage": chat_usage(msg.get("usage")),
    }


class ChunkTranslator:
    """Messages stream events in, chat-completion chunks out (one event may give none or two)."""

    def __init__(self, tail: str = "") -> None:
        self.envelope: dict[str, Any] = {
            "object": "chat.completion.chunk",
            "created": int(time.time()),
        }
        self.usage: dict[str, Any] = {}
        self.tools = 0  # tool_use blocks so far: their chat index
        self.block_tool: dict[int, int] = {}  # Messages block index → chat tool-call index
        self.done = False
        self.produced = False  # text or a tool call went out: a failure now breaks the stream
        self._tail = tail  # whitespace a prefill lost: the continuation's first text repeats it

    def _chunk(self, delta: dict[str, Any], **end: Any) -> dict[str, Any]:
        return {
            **self.envelope,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None, **end}],
        }

    def feed(self, name: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        kind = data.get("type") or name
        if kind == "message_start":
            msg = data.get("message") or {}
            self.envelope.update(id=msg.get("id") or "msg", model=msg.get("model") or "")
            self.usage = dict(msg.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tools
                self.tools += 1
                self.produced = True
                self.block_tool[data.get("index", -1)] = index
                call = {"index": index, "id": block.get("id"), "type": "function",
                        "function": {"name": block.get("name"), "arguments": ""}}  # fmt: skip
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": self._text(block["text"])})]
            return []
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                text = self._text(delta["text"])
                return [self._chunk({"content": text})] if text else []
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                index = self.block_tool.get(data.get("index", -1), max(self.tools - 1, 0))
                call = {"index": index, "function": {"arguments": delta["partial_json"]}}
                return [self._chunk({"tool_calls": [call]})]
            return []  # thinking and signatures: not asked for, not relayed
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            d = data.get("delta") or {}
            end = _choice_end(d.get("stop_reason"), d.get("stop_sequence"))
            usage = {**self.envelope, "choices": [], "usage": chat_usage(self.usage)}
            return [self._chunk({}, **end), usage]
        if kind == "message_stop":
            self.done = True
        return []

    def _text(self, text: str) -> str:
        text, self._tail = drop_repeat(text, self._tail), ""
        self.produced = self.produced or bool(text)
        return text


def drop_repeat(text: str, tail: str) -> str:
    """The continuation's text without the leading whitespace the client already has."""
    if not tail:
        return text
    return text[min(len(text) - len(text.lstrip()), len(tail)) :]
