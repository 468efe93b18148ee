"""The Responses API's event stream, rendered from the chat chunks the engine relays.

Items open as their first delta arrives and close when the next kind starts or the stream ends;
every event carries a `sequence_number`, and ids follow `responses_render` (the same ids as the
final object and a later `GET`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from turnout.wire.responses_render import (
    call_item,
    message_id,
    message_item,
    output_items,
    response_object,
    status_of,
    text_part,
)


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class ResponseEvents:
    """Chat chunk bytes in, Responses events out; one instance per streamed response."""

    def __init__(self, run_id: str, created: float, settings: Mapping[str, Any]) -> None:
        self.run_id = run_id
        self.created = created
        self.settings = settings
        self.seq = 0
        self.text = ""
        self.refusal = ""
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool index → call so far
        self.finish: str | None = None
        self.tokens: tuple[int, int] | None = None
        self._open: tuple[str, int] | None = None  # ("message" | "call", chat index)
        self._indices: dict[tuple[str, int], int] = {}  # item → output_index
        self.ended = False

    def _event(self, kind: str, **data: Any) -> bytes:
        out = sse(kind, {"type": kind, "sequence_number": self.seq, **data})
        self.seq += 1
        return out

    def _response(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(self.run_id, self.created, self.settings, status=status, **extra)

    def start(self) -> bytes:
        r = self._response("in_progress")
        return self._event("response.created", response=r) + self._event(
            "response.in_progress", response=r
        )

    def feed(self, raw: bytes) -> bytes:
        """The events for one relayed piece (one or more `data:` events)."""
        out = b""
        for block in raw.split(b"\n\n"):
            for line in block.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    out += self.done()
                    continue
                try:
                    data = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    continue  # the engine's bytes are its own; nothing else reaches here
                if isinstance(data, dict):
                    out += self._chunk(data)
        return out

    def _chunk(self, data: dict[str, Any]) -> bytes:
        if "error" in data and isinstance(data["error"], dict):
            return self.fail(data["error"])
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.tokens = (usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
        out = b""
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out += self._text(delta["content"])
            if delta.get("refusal"):
                self.refusal += delta["refusal"]
            for call in delta.get("tool_calls") or ():
                out += self._call(call)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return out

    def _text(self, piece: str) -> bytes:
        out = b""
        if self._open != ("message", 0):
            out += self._close()
            index = self._indices.setdefault(("message", 0), len(self._indices))
            item = message_item(self.run_id, [], "in_progress")
            out += self._event("response.output_item.added", output_index=index, item=item)
            out += self._event(
                "response.content_part.added", item_id=message_id(self.run_id),
                output_index=index, content_index=0, part=text_part(""),
            )  # fmt: skip
            self._open = ("message", 0)
        self.text += piece
        return out + self._event(
            "response.output_text.delta", item_id=message_id(self.run_id),
            output_index=self._indices[("message", 0)], content_index=0, delta=piece, logprobs=[],
        )  # fmt: skip

    def _call(self, call: dict[str, Any]) -> bytes:
        k = call.get("index", 0)
        fn = call.get("function") or {}
        out = b""
        if k not in self.calls:
            out += self._close()
            self.calls[k] = {"id": call.get("id"), "name": fn.get("name") or "", "arguments": ""}
            index = self._indices.setdefault(("call", k), len(self._indices))
            item = self._call_item(k, "in_progress")
            out += self._event("response.output_item.added", output_index=index, item=item)
            self._open = ("call", k)
        elif self._open != ("call", k):
            return out  # a call already closed does not reopen; its arguments are final
        args = fn.get("arguments")
        if args:
            self.calls[k]["arguments"] += args
            out += self._event(
                "response.function_call_arguments.delta", item_id=self._call_item(k)["id"],
                output_index=self._indices[("call", k)], delta=args,
            )  # fmt: skip
        return out

    def _call_item(self, k: int, status: str = "completed") -> dict[str, Any]:
        c = self.calls[k]
        number = sorted(self.calls).index(k)
        return call_item(self.run_id, number, c["id"], c["name"], c["arguments"], status)

    def _close(self) -> bytes:
        """Close the open item: its `.done` events, with the whole text or arguments."""
        if self._open is None:
            return b""
        kind, k = self._open
        self._open = None
        index = self._indices[(kind, k)]
        if kind == "message":
            mid = message_id(self.run_id)
            part = text_part(self.text)
            return (
                self._event("response.output_text.done", item_id=mid, output_index=index,
                            content_index=0, text=self.text, logprobs=[])
                + self._event("response.content_part.done", item_id=mid, output_index=index,
                              content_index=0, part=part)
                + self._event("response.output_item.done", output_index=index,
                              item=message_item(self.run_id, [part], "completed"))
            )  # fmt: skip
        item = self._call_item(k)
        return self._event(
            "response.function_call_arguments.done", item_id=item["id"], output_index=index,
            arguments=item["arguments"],
        ) + self._event("response.output_item.done", output_index=index, item=item)  # fmt: skip

    def _message(self) -> dict[str, Any]:
        calls = [
            {"id": self._call_item(k)["call_id"], "type": "function",
             "function": {"name": c["name"], "arguments": c["arguments"]}}
            for k, c in sorted(self.calls.items())
        ]  # fmt: skip
        message: dict[str, Any] = {"content": self.text or None, "tool_calls": calls}
        if self.refusal:
            message["refusal"] = self.refusal
        return message

    def done(self, tokens: tuple[int, int] | None = None) -> bytes:
        """The stream's end: close what is open, then the whole response once more."""
        if self.ended:
            return b""
        self.ended = True
        out = self._close()
        status = status_of(self.finish)
        output = output_items(self.run_id, self._message(), status)
        if not self.text and self.calls:
            output = [o for o in output if o["type"] != "message"]
        response = self._response(
            status, output=output, finish=self.finish, tokens=self.tokens or tokens or (0, 0)
        )
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._event(kind, response=response)

    def fail(self, error: Mapping[str, Any]) -> bytes:
        """`error`, then `response.failed`: what the client has of the answer stays in it."""
        if self.ended:
            return b""
        self.ended = True
        message = str(error.get("message") or "the response failed")
        code = error.get("code") or error.get("type") or "server_error"
        out = self._event("error", code=code, message=message, param=error.get("param"))
        response = self._response(
            "failed", error={"code": code, "message": message}, tokens=self.tokens
        )
        return out + self._event("response.failed", response=response)
