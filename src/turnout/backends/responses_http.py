"""An OpenAI-compatible upstream called through its Responses API (`api: responses`).

Requests go out as Responses bodies and answers come back as chat completions (or chunks), so
the lifecycle sees the one shape it knows; errors are classified as for `/chat/completions`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from turnout.backends.base import (
    Completion,
    Failure,
    Operation,
    StreamChunk,
    UpstreamError,
    UpstreamRequest,
    Usage,
)
from turnout.backends.openai_http import OpenAIHTTPBackend
from turnout.backends.responses_shape import failure_of, finish_of, to_chat, to_responses, usage_of
from turnout.privacy.scrub import scrub


class ResponsesHTTPBackend(OpenAIHTTPBackend):
    async def complete(self, request: UpstreamRequest) -> Completion:
        body = to_responses(request.body, request.operation, self.model)
        data = await self._read_json(request, "/responses", body)
        chat = to_chat(data, request.operation)
        return Completion(chat, Usage.from_body(chat["usage"]))

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamChunk]:
        body = dict(to_responses(request.body, request.operation, self.model), stream=True)
        chunks = _Chunks(request.operation)
        async with self._event_stream(request, "/responses", body, between="events") as events:
            while (event := await events.read()) is not None:
                unreadable = Failure.BROKEN_STREAM if chunks.got_any else Failure.MALFORMED_RESPONSE
                fed = chunks.feed(event.json(unreadable), self._secrets)
                events.got_any = chunks.got_any
                for chunk in fed:
                    yield StreamChunk(chunk)
                if chunks.finished:
                    events.finish()
                    return
        raise UpstreamError(Failure.BROKEN_STREAM, "upstream stream ended before it finished")


class _Chunks:
    """Responses stream events in, chat chunks out."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self.envelope: dict[str, Any] = {"id": "", "created": 0, "model": ""}
        self.calls: dict[int, int] = {}  # output_index → tool-call index
        self.got_any = False
        self.finished = False

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
        if self.operation is Operation.COMPLETION:
            text = (delta or {}).get("content") or ""
            choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": finish}
            return {"object": "text_completion", "choices": [choice], **self.envelope}
        choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
        return {"object": "chat.completion.chunk", "choices": [choice], **self.envelope}

    def feed(self, event: Any, secrets: tuple[str, ...]) -> list[dict[str, Any]]:
        if not isinstance(event, dict):
            return []
        kind = event.get("type")
        self.got_any = True
        if kind == "response.created":
            r = event.get("response") or {}
            self.envelope = {"id": r.get("id") or "", "created": int(r.get("created_at") or 0),
                             "model": r.get("model") or ""}  # fmt: skip
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "response.output_text.delta":
            return [self._chunk({"content": str(event.get("delta", ""))})]
        if kind == "response.refusal.delta":
            return [self._chunk({"refusal": str(event.get("delta", ""))})]
        if kind == "response.output_item.added":
            item = event.get("item") or {}
            if item.get("type") != "function_call":
                return []
            index = self.calls.setdefault(event.get("output_index", 0), len(self.calls))
            call = {"index": index, "id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": ""}}  # fmt: skip
            return [self._chunk({"tool_calls": [call]})]
        if kind == "response.function_call_arguments.delta":
            index = self.calls.get(event.get("output_index", 0))
            if index is None:
                return []
            call = {"index": index, "function": {"arguments": str(event.get("delta", ""))}}
            return [self._chunk({"tool_calls": [call]})]
        if kind in ("response.completed", "response.incomplete"):
            self.finished = True
            r = event.get("response") or {}
            finish = finish_of(r, bool(self.calls))
            usage = usage_of(r)
            tail = dict(self._chunk(None), choices=[])
            tail["usage"] = {"prompt_tokens": usage.prompt_tokens,
                             "completion_tokens": usage.completion_tokens,
                             "total_tokens": usage.total_tokens}  # fmt: skip
            return [self._chunk({}, finish), tail]
        if kind in ("response.failed", "error"):
            err = (event.get("response") or {}).get("error") if kind != "error" else event
            err = err if isinstance(err, dict) else {}
            message = scrub(str(err.get("message") or "no reason given")[:500], secrets)
            failure = failure_of(err.get("code"))
            if failure is Failure.SERVER_ERROR:
                failure = Failure.BROKEN_STREAM
            raise UpstreamError(failure, f"upstream error mid-stream: {message}")
        return []
