"""What the client of a streamed answer has been sent, across every attempt that made it.

A continuation's chunks are rewritten to look like the first attempt's (its id, creation time and
model), without a second `role`, so the client reads one answer however many attempts made it.
"""

from __future__ import annotations

from typing import Any

import orjson

from turnout.backends.base import Operation, StreamChunk, Usage
from turnout.lifecycle.stream import Accumulator, ToolCallNames

DONE = b"data: [DONE]\n\n"


def event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def has_token(data: dict[str, Any]) -> bool:
    for c in data.get("choices") or ():
        if c.get("finish_reason") or c.get("text"):
            return True
        delta = c.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls"):
            return True
    return False


def _text_of(data: dict[str, Any]) -> str:
    out = ""
    for c in data.get("choices") or ():
        text = c.get("text") or (c.get("delta") or {}).get("content")
        if isinstance(text, str):
            out += text
    return out


class Relay:
    __slots__ = ("_envelope", "_names", "_usage_chunk", "acc", "attempt_finish", "attempt_tokens",
                 "attempt_usage",
                 "continued",
                 "head_sent", "sent_chars", "sent_tokens", "wants_usage")  # fmt: skip

    def __init__(self, operation: Operation, wants_usage: bool) -> None:
        self.acc = Accumulator(operation)  # the whole answer, for validation and the record
        self.attempt_usage = Usage()  # this attempt's own report
        self.attempt_finish: str | None = None
        self.wants_usage = wants_usage
        self.head_sent = False
        self.continued = False  # a later attempt continues the answer
        self.sent_chars = 0
        self.sent_tokens = 0
        self.attempt_tokens = 0
        self._names = ToolCallNames()
        self._envelope: dict[str, Any] | None = None  # id, created, model of the first chunk
        self._usage_chunk: StreamChunk | None = None

    def next_attempt(self, continuation: bool) -> None:
        self.attempt_usage = Usage()
        self.attempt_finish = None
        self.attempt_tokens = 0
        self.continued = self.continued or continuation
        self._usage_chunk = None

    def forward(self, chunk: StreamChunk) -> bytes | None:
        """The bytes the client gets for one upstream chunk (None: nothing for it now)."""
        data = chunk.data
        usage_before, finish_before = self.acc.usage, self.acc.finish_reason
        carried = self.acc.add(data)
        if self.acc.usage is not usage_before:
            self.attempt_usage = self.acc.usage
        if self.acc.finish_reason is not finish_before:
            self.attempt_finish = self.acc.finish_reason
        if not carried:
            self._usage_chunk = chunk  # usage only: sent at the end, if the client asked
            return None
        text = _text_of(data)
        if text:
            self.sent_chars += len(text)
            self.sent_tokens += 1  # one chunk a token, as OpenAI-compatible servers stream
            self.attempt_tokens += 1
        rewritten = self._names.tidy(data)
        if self._envelope is None:
            self._envelope = {k: data[k] for k in ("id", "created", "model") if k in data}
        elif self.continued:
            data.update(self._envelope)
            for c in data.get("choices") or ():
                delta = c.get("delta")
                if isinstance(delta, dict):
                    delta.pop("role", None)
            rewritten = True
        if "usage" in data and data["usage"] and not self.wants_usage:
            data["usage"] = None
            rewritten = True
        return event(data) if rewritten or not chunk.raw else chunk.raw

    def usage_event(self, usage: Usage) -> bytes | None:
        """The one usage chunk the client asked for: the upstream's, or the totals if continued."""
        if not self.wants_usage:
            return None
        if not self.continued and self._usage_chunk is not None:
            return self._usage_chunk.raw or event(self._usage_chunk.data)
        body: dict[str, Any] = dict(self._envelope or {})
        body.update(
            object="chat.completion.chunk"
            if self.acc.operation is Operation.CHAT
            else "text_completion",
            choices=[],
            usage={
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        )
        return event(body)
