"""An OpenAI-compatible upstream called through its Responses API (`api: responses`).

Requests go out as Responses bodies and answers come back as chat completions (or chunks), so
the lifecycle sees the one shape it knows; errors are classified as for `/chat/completions`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

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
    def _post(self, request: UpstreamRequest, body: dict[str, Any], timeout: float) -> Any:
        assert self._session is not None, "backend not started"
        headers = {**request.headers, **self._headers}
        headers["x-turnout-request-id"] = request.request_id
        return self._session.post(
            self.base_url + "/responses",
            data=orjson.dumps(body),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=self.timeouts.connect_s),
        )

    async def complete(self, request: UpstreamRequest) -> Completion:
        body = to_responses(request.body, request.operation, self.model)
        try:
            async with self._post(request, body, self.timeouts.total_s) as resp:
                await self._raise_for_status(resp)
                raw = await resp.read()
        except UpstreamError:
            raise
        except TimeoutError:
            raise UpstreamError(Failure.TIMEOUT, "upstream timed out") from None
        except aiohttp.ClientError as exc:
            raise self._connection_error(Failure.CONNECTION_ERROR, exc) from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                Failure.MALFORMED_RESPONSE, "upstream answered 200 with a body that is not JSON"
            ) from None
        chat = to_chat(data, request.operation)
        return Completion(chat, Usage.from_body(chat["usage"]))

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamChunk]:
        body = dict(to_responses(request.body, request.operation, self.model), stream=True)
        t = self.timeouts
        loop = asyncio.get_running_loop()
        started = loop.time()
        hard_stop = started + t.total_s
        chunks = _Chunks(request.operation)
        resp: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout_at(min(hard_stop, started + t.first_token_s)):
                resp = await self._post(request, body, t.total_s)
            await self._raise_for_status(resp)
            data_lines: list[bytes] = []
            while True:
                wait = t.idle_s if chunks.got_any else t.first_token_s
                deadline = min(hard_stop, loop.time() + wait if chunks.got_any else started + wait)
                async with asyncio.timeout_at(deadline):
                    line = await resp.content.readline()
                if not line:
                    break
                line = line.rstrip(b"\r\n")
                if line.startswith(b"data:"):
                    data_lines.append(line[5:].lstrip())
                    continue
                if line or not data_lines:
                    continue  # event names, comments, keep-alives
                payload = b"\n".join(data_lines)
                data_lines = []
                try:
                    event = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    raise UpstreamError(
                        Failure.BROKEN_STREAM if chunks.got_any else Failure.MALFORMED_RESPONSE,
                        "upstream sent a stream event that is not JSON",
                    ) from None
                for chunk in chunks.feed(event, self._secrets):
                    yield StreamChunk(chunk)
                if chunks.finished:
                    resp.release()
                    return
        except UpstreamError:
            raise
        except TimeoutError:
            phase = "between events" if chunks.got_any else "before the first token"
            raise UpstreamError(Failure.TIMEOUT, f"upstream timed out {phase}") from None
        except aiohttp.ClientPayloadError as exc:
            message = f"upstream stream broke: {scrub(str(exc), self._secrets)}"
            raise UpstreamError(Failure.BROKEN_STREAM, message) from None
        except aiohttp.ClientError as exc:
            failure = Failure.BROKEN_STREAM if chunks.got_any else Failure.CONNECTION_ERROR
            raise self._connection_error(failure, exc) from None
        finally:
            if resp is not None:
                resp.close()
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
