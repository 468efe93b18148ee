"""A scriptable OpenAI-compatible upstream for gateway tests.

A real aiohttp server on 127.0.0.1, run in a background thread with its own event loop.
Each completion request consumes one scripted `Step` (FIFO), falling back to `default`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

MODEL_ID = "upstream-model"
_POLL_S = 0.02  # how often waits check for client disconnect / server stop
_ARG_PIECE = 8  # streamed tool-call arguments are split into pieces of this many chars
_ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout_error", "timeout"),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


# What providers answer (HTTP 400) when the prompt does not fit the model's context window.
CONTEXT_EXCEEDED: dict[str, bytes] = {
    "openai": orjson.dumps(
        {
            "error": {
                "message": "This model's maximum context length is 8192 tokens. However, your "
                "messages resulted in 9021 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
    ),
    "vllm": orjson.dumps(
        {
            "error": {
                "message": "This model's maximum context length is 4096 tokens. However, you "
                "requested 5012 tokens (4500 in the messages, 512 in the completion). Please "
                "reduce the length of the messages or completion.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        }
    ),
    "vllm_legacy": orjson.dumps(
        {
            "object": "error",
            "message": "This model's maximum context length is 4096 tokens. However, you "
            "requested 5012 tokens (4500 in the messages, 512 in the completion). Please reduce "
            "the length of the messages or completion.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    ),
    "llamacpp": orjson.dumps(
        {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 5012,
                "n_ctx": 4096,
            }
        }
    ),
    "anthropic": orjson.dumps(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "prompt is too long: 208344 tokens > 200000 maximum",
            },
        }
    ),
}
CONTENT_POLICY_VIOLATION: bytes = orjson.dumps(
    {
        "error": {
            "message": "Your request was rejected as a result of our safety system.",
            "type": "invalid_request_error",
            "param": None,
            "code": "content_policy_violation",
        }
    }
)


@dataclass
class Step:
    """What the upstream does for one completion request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content: str | None = "Hello from upstream."
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    stall_after_chunks: int | None = None
    break_after_chunks: int | None = None
    malformed: bool = False
    drop_connection: bool = False
    model: str | None = None
    system_fingerprint: str | None = None
    hold: threading.Event | None = None  # answer only once the test sets it
    raw: bytes | None = None  # answer exactly these bytes (JSON) with `status`
    raw_events: list[bytes] | None = None  # stream exactly these SSE `data:` payloads
    malformed_after_chunks: int | None = None  # one unparseable event after N content chunks
    repeat_tool_call_names: bool = False  # every tool-call delta repeats id and name (llama.cpp)
    # A trailing assistant message P is a prefill: if `content` starts with P, answer the rest
    # only, as a server that continues the final message does.
    continue_prefill: bool = True


class Headers(dict[str, str]):
    """Request headers; keys are stored lowercased and lookups are case-insensitive."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for k, v in items:
            key = k.lower()
            self[key] = f"{super().__getitem__(key)}, {v}" if super().__contains__(key) else v

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass
class Received:
    """One completion request as the upstream saw it."""

    path: str
    headers: dict[str, str]  # a case-insensitive `Headers`
    body: dict[str, Any]
    at: float  # time.monotonic() at arrival

    @property
    def prefill(self) -> str | None:
        """The trailing assistant message's text: what a continuation asked to extend."""
        messages = self.body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "assistant":
            return None
        content = last.get("content")
        return content if isinstance(content, str) else None

    @property
    def max_tokens(self) -> int | None:
        """The output limit the request asked for, under either name."""
        value = self.body.get("max_tokens", self.body.get("max_completion_tokens"))
        return value if isinstance(value, int) else None


def free_port() -> int:
    """A loopback port with nothing listening on it (for connect-refused tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def split_words(text: str) -> list[str]:
    """Split into word pieces that keep their leading whitespace; ''.join() restores text."""
    return re.findall(r"\s*\S+|\s+$", text)


def _text_len(x: Any) -> int:
    if isinstance(x, str):
        return len(x)
    if isinstance(x, list):
        return sum(_text_len(i) for i in x)
    if isinstance(x, dict):
        return _text_len(x.get("text"))
    return 0


def _prompt_tokens(body: dict[str, Any]) -> int:
    chars = _text_len(body.get("prompt"))
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            chars += _text_len(m.get("content"))
    return chars // 4 + 1


def _tool_calls(step: Step) -> list[dict[str, Any]]:
    """Normalized copies: id and type filled in, arguments always a JSON string."""
    out: list[dict[str, Any]] = []
    for tc in step.tool_calls or []:
        fn = dict(tc.get("function") or {})
        args = fn.get("arguments", "")
        fn["arguments"] = args if isinstance(args, str) else orjson.dumps(args).decode()
        fn.setdefault("name", "")
        out.append(
            {
                "id": tc.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                "type": tc.get("type") or "function",
                "function": fn,
            }
        )
    return out


def _sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class ScriptedUpstream:
    """Real loopback OpenAI-protocol server whose responses are scripted per request."""

    def __init__(self, default: Step | None = None) -> None:
        self.default: Step = default if default is not None else Step()
        self.rtt_s: float = 0.0  # added to every request, /models included: a network round trip
        self.requests: list[Received] = []
        self.breaks: list[float] = []  # time.monotonic() of each connection a break closed
        self.port: int = 0
        self.base_url: str = ""
        self._steps: deque[Step] = deque()
        self._cond = threading.Condition()
        self._disconnects = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self._inflight: dict[int, web.BaseRequest] = {}  # id(request) -> request
        self.max_inflight = 0  # the most completion requests it ever had at once

    # ---- control (test thread) ----

    def start(self) -> ScriptedUpstream:
        if self._loop is not None:
            return self
        self._stopping = False
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="scripted-upstream", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._astart(), loop).result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        self._stopping = True
        if self._runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()

    def __enter__(self) -> ScriptedUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def script(self, *steps: Step) -> None:
        with self._cond:
            self._steps.extend(steps)

    @property
    def pending_steps(self) -> int:
        with self._cond:
            return len(self._steps)

    @property
    def disconnects(self) -> int:
        with self._cond:
            return self._disconnects

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[Received]:
        """Block until at least n requests arrived; returns the first n."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise TimeoutError(f"expected {n} requests, got {len(self.requests)}")
            return list(self.requests[:n])

    def wait_for_disconnects(self, n: int, timeout: float = 5.0) -> int:
        """Block until at least n client disconnects were seen; returns the count."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._disconnects >= n, timeout):
                raise TimeoutError(f"expected {n} disconnects, got {self._disconnects}")
            return self._disconnects

    def wait_for_breaks(self, n: int, timeout: float = 5.0) -> list[float]:
        """Block until at least n scripted breaks closed their connection; returns their times."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.breaks) >= n, timeout):
                raise TimeoutError(f"expected {n} breaks, got {len(self.breaks)}")
            return list(self.breaks[:n])

    def reset(self) -> None:
        """Forget scripted steps, recorded requests and the disconnect count."""
        with self._cond:
            self._steps.clear()
            self.requests.clear()
            self.breaks.clear()
            self._disconnects = 0
            self.max_inflight = 0

    # ---- server (loop thread) ----

    async def _astart(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._completion)
        app.router.add_post("/v1/completions", self._completion)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        self._app_routes(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        self._runner = runner
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        await web.SockSite(runner, sock, backlog=1024).start()

    async def _astop(self) -> None:
        for req in list(self._inflight.values()):
            if req.transport is not None:
                req.transport.abort()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _gone(self, request: web.BaseRequest) -> bool:
        t = request.transport
        return t is None or t.is_closing()

    def _bail(self, request: web.BaseRequest) -> None:
        """Handler cannot continue: server stopping (abort) or client left (count it)."""
        if self._stopping:
            if request.transport is not None:
                request.transport.abort()
        elif self._gone(request):
            with self._cond:
                self._disconnects += 1
                self._cond.notify_all()

    async def _sleep(self, request: web.BaseRequest, seconds: float) -> bool:
        """Sleep unless the client leaves or the server stops; False if interrupted."""
        deadline = time.monotonic() + seconds
        while True:
            if self._stopping or self._gone(request):
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            await asyncio.sleep(min(_POLL_S, left))

    async def _write(self, request: web.BaseRequest, resp: web.StreamResponse, data: bytes) -> bool:
        if self._stopping or self._gone(request):
            return False
        try:
            await resp.write(data)
        except ConnectionError:
            return False
        return True

    async def _completion(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        if self.rtt_s:
            await asyncio.sleep(self.rtt_s)
        self._inflight[id(request)] = request
        self.max_inflight = max(self.max_inflight, len(self._inflight))
        try:
            return await self._handle(request, at)
        finally:
            self._inflight.pop(id(request), None)

    async def _handle(self, request: web.Request, at: float) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        ok = isinstance(body, dict)
        with self._cond:
            headers = Headers(request.headers.items())
            received = Received(request.path, headers, body if ok else {}, at)
            self.requests.append(received)
            step = self._steps.popleft() if ok and self._steps else self.default
            self._cond.notify_all()
        if not ok:
            return _error(400, "request body is not a JSON object")
        assert isinstance(body, dict)
        step = _continued(step, received.prefill)

        while step.hold is not None and not step.hold.is_set():
            if not await self._sleep(request, _POLL_S):
                self._bail(request)
                return web.Response()
        if step.delay_s > 0 and not await self._sleep(request, step.delay_s):
            self._bail(request)
            return web.Response()
        if step.drop_connection:
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        if step.raw_events is not None and body.get("stream"):
            resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for payload in step.raw_events:
                await resp.write(b"data: " + payload + b"\n\n")
            await resp.write_eof()
            return resp
        if step.raw is not None:
            return web.Response(status=step.status, body=step.raw, content_type="application/json")
        if step.status != 200:
            resp = _error(step.status, f"scripted upstream error (status {step.status})")
            resp.headers.update(step.headers)
            return resp

        chat = request.path.endswith("/chat/completions")
        if body.get("stream"):
            return await self._stream(request, step, body, chat)
        if step.malformed:
            bad = web.Response(
                status=200,
                text='{"id": "chatcmpl-broken", "choices": [',
                content_type="application/json",
            )
            bad.headers.update(step.headers)
            return bad
        resp = web.Response(
            body=orjson.dumps(self._answer(step, body, chat)), content_type="application/json"
        )
        resp.headers.update(step.headers)
        return resp

    async def _stream(
        self, request: web.Request, step: Step, body: dict[str, Any], chat: bool
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        resp.headers["Content-Type"] = "text/event-stream"
        resp.headers["Cache-Control"] = "no-cache"
        resp.headers.update(step.headers)
        try:
            await resp.prepare(request)
        except ConnectionError:
            self._bail(request)
            return resp

        # (kind, bytes); kind: "role" | "payload" | "tail" | "malformed"
        events = self._events(step, body, chat)
        sent = 0
        for i, (kind, data) in enumerate(events):
            if kind != "role":
                if step.break_after_chunks is not None and sent >= step.break_after_chunks:
                    closed_at = time.monotonic()
                    if request.transport is not None:
                        request.transport.abort()
                    with self._cond:
                        self.breaks.append(closed_at)
                        self._cond.notify_all()
                    return resp
                if step.stall_after_chunks is not None and sent >= step.stall_after_chunks:
                    await self._sleep(request, float("inf"))
                    self._bail(request)
                    return resp
            if (
                i > 0
                and step.chunk_delay_s > 0
                and not await self._sleep(request, step.chunk_delay_s)
            ):
                self._bail(request)
                return resp
            if not await self._write(request, resp, data):
                self._bail(request)
                return resp
            if kind == "payload":
                sent += 1
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()
        return resp

    # What a subclass speaking another wire format changes: its routes, the answer, whole or
    # as events.
    def _app_routes(self, app: web.Application) -> None:
        pass

    def _answer(self, step: Step, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        return _full(step, body, chat)

    def _events(self, step: Step, body: dict[str, Any], chat: bool) -> list[tuple[str, bytes]]:
        return _stream_events(step, body, chat)

    async def _models(self, request: web.Request) -> web.Response:
        if self.rtt_s:
            await asyncio.sleep(self.rtt_s)
        model = {
            "id": MODEL_ID,
            "object": "model",
            "created": 1700000000,
            "owned_by": "turnout-tests",
        }
        return web.json_response({"object": "list", "data": [model]})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _metrics(self, request: web.Request) -> web.Response:
        with self._cond:
            n, d = len(self.requests), self._disconnects
        text = (
            "# TYPE upstream_requests_total counter\n"
            f"upstream_requests_total {n}\n"
            "# TYPE upstream_disconnects_total counter\n"
            f"upstream_disconnects_total {d}\n"
            "# TYPE upstream_inflight gauge\n"
            f"upstream_inflight {len(self._inflight)}\n"
        )
        return web.Response(text=text, content_type="text/plain", charset="utf-8")


def _error(status: int, message: str) -> web.Response:
    etype, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "api_error", ""))
    err = {"message": message, "type": etype, "param": None, "code": code or str(status)}
    return web.Response(
        status=status, body=orjson.dumps({"error": err}), content_type="application/json"
    )


def _continued(step: Step, prefill: str | None) -> Step:
    """The step as a server that continues the final assistant message `prefill` answers it."""
    content = step.content
    if not (step.continue_prefill and prefill and content and content.startswith(prefill)):
        return step
    return dataclasses.replace(step, content=content[len(prefill) :])


def _usage(step: Step, body: dict[str, Any], tcs: list[dict[str, Any]]) -> dict[str, int]:
    prompt = step.prompt_tokens if step.prompt_tokens is not None else _prompt_tokens(body)
    completion = step.completion_tokens
    if completion is None:
        completion = len((step.content or "").split())
        completion += sum(len(tc["function"]["arguments"].split()) for tc in tcs)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _envelope(step: Step, body: dict[str, Any], obj: str, rid: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": rid,
        "object": obj,
        "created": int(time.time()),
        "model": step.model or body.get("model") or MODEL_ID,
    }
    if step.system_fingerprint is not None:
        out["system_fingerprint"] = step.system_fingerprint
    return out


def _full(step: Step, body: dict[str, Any], chat: bool) -> dict[str, Any]:
    tcs = _tool_calls(step) if chat else []
    if chat:
        msg: dict[str, Any] = {"role": "assistant", "content": step.content}
        if tcs:
            msg["tool_calls"] = tcs
        choice: dict[str, Any] = {"index": 0, "message": msg}
        rid, obj = f"chatcmpl-{uuid.uuid4().hex[:24]}", "chat.completion"
    else:
        choice = {"index": 0, "text": step.content or ""}
        rid, obj = f"cmpl-{uuid.uuid4().hex[:24]}", "text_completion"
    choice["logprobs"] = None
    choice["finish_reason"] = step.finish_reason
    out = _envelope(step, body, obj, rid)
    out["choices"] = [choice]
    out["usage"] = _usage(step, body, tcs)
    return out


def _stream_events(step: Step, body: dict[str, Any], chat: bool) -> list[tuple[str, bytes]]:
    """All SSE events of one stream, tagged so the caller can stall/break between them."""
    opts = body.get("stream_options")
    include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
    tcs = _tool_calls(step) if chat else []
    if chat:
        rid, obj = f"chatcmpl-{uuid.uuid4().hex[:24]}", "chat.completion.chunk"
    else:
        rid, obj = f"cmpl-{uuid.uuid4().hex[:24]}", "text_completion"
    base = _envelope(step, body, obj, rid)

    def chunk(payload: dict[str, Any], finish: str | None = None) -> bytes:
        if chat:
            choice = {"index": 0, "delta": payload, "logprobs": None, "finish_reason": finish}
        else:
            choice = {
                "index": 0,
                "text": payload.get("content", ""),
                "logprobs": None,
                "finish_reason": finish,
            }
        ev = {**base, "choices": [choice]}
        if include_usage:
            ev["usage"] = None
        return _sse(ev)

    events: list[tuple[str, bytes]] = []
    if chat:
        role = {"role": "assistant", "content": "" if step.content is not None else None}
        events.append(("role", chunk(role)))
    if step.malformed:
        events.append(("malformed", b'data: {"id": "broken", "choices": [\n\n'))
    for n, piece in enumerate(split_words(step.content or "")):
        if n == step.malformed_after_chunks:
            events.append(("malformed", b'data: {"id": "broken", "choices": [\n\n'))
        events.append(("payload", chunk({"content": piece})))
    for i, tc in enumerate(tcs):
        fn = tc["function"]
        head = {
            "index": i,
            "id": tc["id"],
            "type": tc["type"],
            "function": {"name": fn["name"], "arguments": ""},
        }
        events.append(("payload", chunk({"tool_calls": [head]})))
        args: str = fn["arguments"]
        for j in range(0, len(args), _ARG_PIECE):
            delta: dict[str, Any] = {
                "index": i,
                "function": {"arguments": args[j : j + _ARG_PIECE]},
            }
            if step.repeat_tool_call_names:
                delta.update(id=tc["id"], type=tc["type"])
                delta["function"]["name"] = fn["name"]
            events.append(("payload", chunk({"tool_calls": [delta]})))
    events.append(("tail", chunk({}, step.finish_reason)))
    if include_usage:
        events.append(("tail", _sse({**base, "choices": [], "usage": _usage(step, body, tcs)})))
    events.append(("tail", b"data: [DONE]\n\n"))
    return events
