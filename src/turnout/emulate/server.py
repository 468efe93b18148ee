"""An OpenAI-compatible HTTP server in front of a `BatchEngine`: what `turnout emulate` runs.

`POST /v1/chat/completions` and `POST /v1/completions` (JSON, or SSE with `stream: true`),
`GET /v1/models`, `GET /health`, and a vLLM-style `GET /metrics`.

The answer's length is, in order: the body's `emulate.output_tokens`, the request header
`x-emulate-output-tokens`, else a seeded lognormal draw; `max_tokens` caps it (finish_reason
`length`). The prompt's length is `emulate.prompt_tokens`, else ~4 characters a token.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from turnout.emulate.engine import BatchEngine, Job
from turnout.sim.timing import Profile

OUTPUT_HEADER = "x-emulate-output-tokens"
_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    profile: Profile
    model: str = "emulated"
    seed: int = 0
    output_median: float = 200.0  # lognormal draw when the request does not say
    output_sigma: float = 1.0
    max_output: int = 8192


def _prompt_tokens(body: dict[str, Any]) -> int:
    hint = (body.get("emulate") or {}).get("prompt_tokens")
    if isinstance(hint, int) and hint > 0:
        return hint
    chars = 0
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            chars += len(content)
    if isinstance(body.get("prompt"), str):
        chars += len(body["prompt"])
    return max(1, chars // 4)


def _bad(message: str, status: int = 400) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    return web.json_response(body, status=status, dumps=lambda o: orjson.dumps(o).decode())


class Emulator:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.engine = BatchEngine(config.profile)
        self.rng = random.Random(config.seed)
        self.started = int(time.time())

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _app: web.Application) -> None:
        self.engine.start()

    async def _stop(self, _app: web.Application) -> None:
        await self.engine.stop()

    def _output_tokens(self, body: dict[str, Any], request: web.Request) -> tuple[int, str]:
        asked = (body.get("emulate") or {}).get("output_tokens")
        if asked is None and OUTPUT_HEADER in request.headers:
            asked = int(request.headers[OUTPUT_HEADER])
        if not isinstance(asked, int) or asked < 1:
            c = self.config
            drawn = self.rng.lognormvariate(math.log(c.output_median), c.output_sigma)
            asked = max(1, min(c.max_output, round(drawn)))
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and 0 < limit < asked:
            return limit, "length"
        return asked, "stop"

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=False)

    async def _serve(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return _bad(f"invalid JSON: {exc}")
        if not isinstance(body, dict):
            return _bad("the body must be a JSON object")
        if chat and not isinstance(body.get("messages"), list):
            return _bad("'messages' is required")
        output, finish = self._output_tokens(body, request)
        job = Job(_prompt_tokens(body), output)
        self.engine.submit(job)
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        try:
            if body.get("stream"):
                return await self._stream(request, job, rid, chat, finish, body)
            while await job.tokens.get() < job.output_tokens:
                pass
            return self._whole(job, rid, chat, finish)
        finally:
            self.engine.cancel(job)

    def _usage(self, job: Job) -> dict[str, int]:
        return {
            "prompt_tokens": job.prompt_tokens,
            "completion_tokens": job.generated,
            "total_tokens": job.prompt_tokens + job.generated,
        }

    def _whole(self, job: Job, rid: str, chat: bool, finish: str) -> web.Response:
        text = "".join(_word(i) for i in range(job.generated))
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        out = {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": self.config.model,
            "choices": [choice],
            "usage": self._usage(job),
        }
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    async def _stream(
        self,
        request: web.Request,
        job: Job,
        rid: str,
        chat: bool,
        finish: str,
        body: dict[str, Any],
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        created = int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"

        def event(piece: str, reason: str | None, first: bool = False) -> bytes:
            if chat:
                delta: dict[str, Any] = {"content": piece}
                if first:
                    delta["role"] = "assistant"
                choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": reason}
            else:
                choice = {"index": 0, "text": piece, "finish_reason": reason}
            chunk = {
                "id": rid,
                "object": kind,
                "created": created,
                "model": self.config.model,
                "choices": [choice],
            }
            return b"data: " + orjson.dumps(chunk) + b"\n\n"

        try:
            n = 0
            while n < job.output_tokens:
                n = await job.tokens.get()
                out = [event(_word(n - 1), None, first=n == 1)]
                while not job.tokens.empty():  # tokens that came while we wrote: one write
                    n = job.tokens.get_nowait()
                    out.append(event(_word(n - 1), None))
                await resp.write(b"".join(out))
            tail = [event("", finish)]
            opts = body.get("stream_options")
            if isinstance(opts, dict) and opts.get("include_usage"):
                usage = {
                    "id": rid,
                    "object": kind,
                    "created": created,
                    "model": self.config.model,
                    "choices": [],
                    "usage": self._usage(job),
                }
                tail.append(b"data: " + orjson.dumps(usage) + b"\n\n")
            tail.append(b"data: [DONE]\n\n")
            await resp.write(b"".join(tail))
            await resp.write_eof()
        except ConnectionResetError:  # the client went away; the caller frees its slot
            pass
        return resp

    async def models(self, _request: web.Request) -> web.Response:
        out = {
            "object": "list",
            "data": [
                {
                    "id": self.config.model,
                    "object": "model",
                    "created": self.started,
                    "owned_by": "turnout-emulate",
                }
            ],
        }
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    async def health(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics(self, _request: web.Request) -> web.Response:
        e = self.engine
        label = f'{{model_name="{self.config.model}"}}'
        usage = e.kv_usage()
        lines = [
            (
                "vllm:num_requests_running",
                "gauge",
                "Number of requests in model execution batches.",
                e.num_running,
            ),
            (
                "vllm:num_requests_waiting",
                "gauge",
                "Number of requests waiting to be processed.",
                e.num_waiting,
            ),
            (
                "vllm:gpu_cache_usage_perc",
                "gauge",
                "GPU KV-cache usage. 1 means 100 percent usage.",
                usage,
            ),
            (
                "vllm:kv_cache_usage_perc",
                "gauge",
                "KV-cache usage. 1 means 100 percent usage.",
                usage,
            ),
            (
                "vllm:num_preemptions_total",
                "counter",
                "Cumulative number of preemptions.",
                e.preemptions_total,
            ),
            (
                "vllm:prompt_tokens_total",
                "counter",
                "Number of prefill tokens processed.",
                e.prompt_tokens_total,
            ),
            (
                "vllm:generation_tokens_total",
                "counter",
                "Number of generation tokens processed.",
                e.generation_tokens_total,
            ),
            (
                "vllm:request_success_total",
                "counter",
                "Count of successfully processed requests.",
                e.finished_total,
            ),
        ]
        text = "".join(
            f"# HELP {name} {doc}\n# TYPE {name} {kind}\n{name}{label} {float(value)}\n"
            for name, kind, doc, value in lines
        )
        return web.Response(text=text, content_type="text/plain", charset="utf-8")


def _word(i: int) -> str:
    return _WORDS[i % len(_WORDS)] + " "


def serve(config: EmulatorConfig, host: str, port: int) -> None:
    """Run one emulated instance until interrupted."""
    web.run_app(Emulator(config).app(), host=host, port=port, print=None, access_log=None)
