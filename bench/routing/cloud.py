"""A loopback "cloud" for the routing frontier: OpenAI-compatible, with a network and a speed.

Every answer is exactly `max_tokens` tokens long (finish_reason "length", usage reported), produced
at `--tokens-per-s` after `--ttft-ms` of server-side prefill, and every response (the model list
too) waits `--rtt-ms` first: the network round trip. Each completion request's body is appended to
`--log` (JSON lines) before anything is answered, so what the cloud saw is its own evidence.

Run: ``python bench/routing/cloud.py --port 18100 --rtt-ms 150 --tokens-per-s 80 --log cloud.jsonl``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from pathlib import Path
from typing import Any, TextIO

import orjson
from aiohttp import web

WORDS = ["the", "cloud", "answers", "with", "a", "steady", "stream", "of", "plain", "words"]
DEFAULT_MAX_TOKENS = 64
_ids = itertools.count(1)


def prompt_tokens(body: dict[str, Any]) -> int:
    chars = 0
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            chars += len(content)
    return chars // 4 + 1


def pieces(n: int) -> list[str]:
    """n tokens of text: one word each, the first without a leading space."""
    return [("" if i == 0 else " ") + WORDS[i % len(WORDS)] for i in range(n)]


class Cloud:
    def __init__(
        self, rtt_s: float, ttft_s: float, tokens_per_s: float, log: TextIO, model: str
    ) -> None:
        self.rtt_s = rtt_s
        self.ttft_s = ttft_s
        self.per_token_s = 1.0 / tokens_per_s
        self.log = log
        self.model = model

    async def models(self, _: web.Request) -> web.Response:
        await asyncio.sleep(self.rtt_s)
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model"}]}
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        body = orjson.loads(await request.read())
        self.log.write(orjson.dumps({"at": time.time(), "body": body}).decode() + "\n")
        self.log.flush()
        n = int(body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_MAX_TOKENS)
        usage = {
            "prompt_tokens": prompt_tokens(body),
            "completion_tokens": n,
            "total_tokens": prompt_tokens(body) + n,
        }
        cid = f"chatcmpl-cloud-{next(_ids)}"
        # Time is kept against the arrival, so slow event-loop turns do not add up.
        first_at = arrived + self.rtt_s + self.ttft_s + self.per_token_s
        if not body.get("stream"):
            await asyncio.sleep(max(0.0, first_at + (n - 1) * self.per_token_s - time.monotonic()))
            return web.json_response(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": self.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(pieces(n))},
                            "finish_reason": "length",
                        }
                    ],
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        for i, text in enumerate(pieces(n)):
            await asyncio.sleep(max(0.0, first_at + i * self.per_token_s - time.monotonic()))
            delta = {"role": "assistant", "content": text} if i == 0 else {"content": text}
            await resp.write(chunk(delta, None))
        await resp.write(chunk({}, "length"))
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(
                b"data: "
                + orjson.dumps(
                    {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "model": self.model,
                        "choices": [],
                        "usage": usage,
                    }
                )
                + b"\n\n"
            )
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def app(cloud: Cloud) -> web.Application:
    a = web.Application(client_max_size=8 * 1024 * 1024)
    a.router.add_get("/v1/models", cloud.models)
    a.router.add_post("/v1/chat/completions", cloud.chat)
    return a


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rtt-ms", type=float, default=150.0)
    p.add_argument("--ttft-ms", type=float, default=120.0, help="server-side time to first token")
    p.add_argument("--tokens-per-s", type=float, default=80.0)
    p.add_argument("--model", default="cloud-model")
    p.add_argument("--log", type=Path, required=True)
    a = p.parse_args()
    with a.log.open("a") as log:
        cloud = Cloud(a.rtt_ms / 1000, a.ttft_ms / 1000, a.tokens_per_s, log, a.model)
        web.run_app(app(cloud), host="127.0.0.1", port=a.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
