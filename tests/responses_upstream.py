"""A scripted upstream that speaks the Responses API (`POST /v1/responses`), for `api: responses`.

The same `Step`s as `ScriptedUpstream` (errors, delays, breaks, stalls, tool calls), answered as
Response objects and Responses events; the stream's break and stall counts are text and argument
deltas.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from aiohttp import web
from upstream import MODEL_ID, ScriptedUpstream, Step, _tool_calls, split_words

_ARG_PIECE = 8
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _input_tokens(body: dict[str, Any]) -> int:
    return len(orjson.dumps(body.get("input"))) // 4 + 1


class ResponsesUpstream(ScriptedUpstream):
    def _app_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/responses", self._completion)

    def _answer(self, step: Step, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        return _response(step, body, "completed")

    def _events(self, step: Step, body: dict[str, Any], chat: bool) -> list[tuple[str, bytes]]:
        rid = f"resp_up_{uuid.uuid4().hex[:16]}"
        shell = _response(step, body, "in_progress", rid=rid, output=False)
        seq = iter(range(10_000))

        def ev(kind: str, **data: Any) -> bytes:
            return _sse(kind, {"type": kind, "sequence_number": next(seq), **data})

        events: list[tuple[str, bytes]] = [
            ("role", ev("response.created", response=shell)),
            ("role", ev("response.in_progress", response=shell)),
        ]
        index = 0
        if step.content:
            mid = f"msg_up_{index}"
            item = {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            events.append(("role", ev("response.output_item.added", output_index=0, item=item)))
            part = {"type": "output_text", "text": "", "annotations": []}
            events.append(
                (
                    "role",
                    ev(
                        "response.content_part.added",
                        item_id=mid,
                        output_index=0,
                        content_index=0,
                        part=part,
                    ),
                )
            )
            if step.malformed:
                events.append(("malformed", b"event: x\ndata: {broken\n\n"))
            for n, piece in enumerate(split_words(step.content)):
                if n == step.malformed_after_chunks:
                    events.append(("malformed", b"event: x\ndata: {broken\n\n"))
                events.append(
                    (
                        "payload",
                        ev(
                            "response.output_text.delta",
                            item_id=mid,
                            output_index=0,
                            content_index=0,
                            delta=piece,
                        ),
                    )
                )
            index = 1
        for tc in _tool_calls(step):
            fn = tc["function"]
            item = {
                "id": f"fc_up_{index}",
                "type": "function_call",
                "call_id": tc["id"],
                "name": fn["name"],
                "arguments": "",
                "status": "in_progress",
            }
            events.append(
                ("payload", ev("response.output_item.added", output_index=index, item=item))
            )
            args: str = fn["arguments"]
            for j in range(0, len(args), _ARG_PIECE):
                events.append(
                    (
                        "payload",
                        ev(
                            "response.function_call_arguments.delta",
                            item_id=item["id"],
                            output_index=index,
                            delta=args[j : j + _ARG_PIECE],
                        ),
                    )
                )
            index += 1
        final = _response(step, body, "completed", rid=rid)
        kind = "response.completed"
        if final["status"] == "incomplete":
            kind = "response.incomplete"
        events.append(("tail", ev(kind, response=final)))
        return events


def _response(
    step: Step, body: dict[str, Any], status: str, *, rid: str | None = None, output: bool = True
) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    calls = _tool_calls(step)
    if output and step.content is not None:
        out.append(
            {
                "id": "msg_up_0",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": step.content, "annotations": []}],
            }
        )
    if output:
        for i, tc in enumerate(calls):
            fn = tc["function"]
            out.append(
                {
                    "id": f"fc_up_{i}",
                    "type": "function_call",
                    "call_id": tc["id"],
                    "name": fn["name"],
                    "arguments": fn["arguments"],
                    "status": "completed",
                }
            )
    reason = _INCOMPLETE.get(step.finish_reason) if status == "completed" else None
    prompt = step.prompt_tokens if step.prompt_tokens is not None else _input_tokens(body)
    completion = step.completion_tokens
    if completion is None:
        completion = len((step.content or "").split())
    return {
        "id": rid or f"resp_up_{uuid.uuid4().hex[:16]}",
        "object": "response",
        "created_at": int(time.time()),
        "model": step.model or body.get("model") or MODEL_ID,
        "status": "incomplete" if reason else status,
        "incomplete_details": {"reason": reason} if reason else None,
        "error": None,
        "output": out,
        "usage": {
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if output
        else None,
    }
