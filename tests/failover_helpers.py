"""Failover tests' shared pieces: configs, the official SDK over a wire tap, and the record."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, split_words

from turnout.store.query import RecordNotFound

FAST = "backoff: {base_s: 0.01, max_s: 2.0}"
# vLLM continues a trailing assistant message only when asked to.
VLLM_PREFILL = (
    "supports_prefill: true,"
    " prefill_fields: {continue_final_message: true, add_generation_prompt: false}"
)
TEXT = (
    "The gateway keeps the answer flowing when an upstream fails halfway through a long reply,"
    " so the client reads one seamless stream of words from the first delta to the last one"
    " and never sees the seam where the second deployment picked up the text."
)
WORDS = split_words(TEXT)
assert len(WORDS) >= 40


def prefix(n: int) -> str:
    """The first n word chunks of TEXT, as the client has them after n deltas."""
    return "".join(WORDS[:n])


def config(deps: dict[str, tuple[ScriptedUpstream | str, str]], lifecycle: str = FAST) -> str:
    """One model, `assistant`, over `deps` in order: name -> (upstream or URL, extra keys)."""
    lines = ["deployments:"]
    for name, (up, extra) in deps.items():
        url = up if isinstance(up, str) else up.base_url
        more = f", {extra}" if extra else ""
        lines.append(f'  {name}: {{kind: openai, base_url: "{url}", model: m-{name}{more}}}')
    lines.append("models:")
    lines.append(f"  assistant: {{deployments: [{', '.join(deps)}], lifecycle: {{{lifecycle}}}}}")
    return "\n".join(lines) + "\n"


class _Tee(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, into: bytearray) -> None:
        self._inner = inner
        self._into = into

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._into.extend(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class WireTap(httpx.HTTPTransport):
    """A real transport that keeps every response body: what the SDK read, byte for byte."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[httpx.Request, bytearray]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        body = bytearray()
        self.calls.append((request, body))
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _Tee(response.stream, body)
        return response


def sdk(gw: RunningGateway, tap: WireTap | None = None) -> openai.OpenAI:
    """The official client with its defaults (max_retries=2), pointed at the gateway."""
    http = httpx.Client(transport=tap or WireTap(), timeout=30)
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", http_client=http)


@dataclass
class Streamed:
    """One streamed answer as the SDK delivered it, and the bytes it was read from."""

    request_id: str
    chunks: list[Any]
    raw: bytes
    error: openai.APIError | None = None
    events: list[Any] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(
            c.choices[0].delta.content or ""
            for c in self.chunks
            if c.choices and c.choices[0].delta
        )

    @property
    def finish_reasons(self) -> list[str]:
        return [
            c.choices[0].finish_reason
            for c in self.chunks
            if c.choices and c.choices[0].finish_reason
        ]

    @property
    def usage_chunks(self) -> list[int]:
        """Positions of the chunks that carry usage."""
        return [i for i, c in enumerate(self.chunks) if c.usage is not None]

    @property
    def done_count(self) -> int:
        return sum(1 for e in self.events if e == "[DONE]")

    @property
    def error_events(self) -> list[Any]:
        return [e for e in self.events if isinstance(e, dict) and "error" in e]


def stream_chat(gw: RunningGateway, *, include_usage: bool = False, **body: Any) -> Streamed:
    """Stream one chat request through the SDK; an SDK error is kept, not raised."""
    tap = WireTap()
    client = sdk(gw, tap)
    body.setdefault("model", "assistant")
    body.setdefault("messages", [{"role": "user", "content": "Tell me about the gateway."}])
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    raw = client.chat.completions.with_raw_response.create(stream=True, **body)
    rid = raw.headers["x-turnout-request-id"]
    chunks: list[Any] = []
    error: openai.APIError | None = None
    try:
        for chunk in raw.parse():
            chunks.append(chunk)
    except openai.APIError as exc:
        error = exc
    assert len(tap.calls) == 1, "the SDK made more than one call for one stream"
    data = bytes(tap.calls[0][1])
    return Streamed(rid, chunks, data, error, sse_events(data.decode()))


def sse_events(text: str) -> list[Any]:
    out: list[Any] = []
    for block in text.split("\n\n"):
        block = block.strip()
        if block.startswith("data:"):
            data = block[5:].strip()
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def record(gw: RunningGateway, request_id: str) -> dict[str, Any]:
    """The request's record; an SDK that raised on an error event may read it before it ends."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return gw.record(request_id)
        except RecordNotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def path(rec: dict[str, Any]) -> list[str]:
    return [e["state"] for e in rec["events"]]


def event(rec: dict[str, Any], state: str) -> dict[str, Any]:
    """The attrs of the one event in `state`."""
    found = [e.get("attrs") or {} for e in rec["events"] if e["state"] == state]
    assert len(found) == 1, f"expected one {state!r} event, path {path(rec)}"
    return found[0]


def attempts(rec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["deployment"], a.get("error") or "ok") for a in rec["attempt_log"]]


CONTINUED = [
    "received",
    "routed",
    "attempting",
    "streaming",
    "continuing",
    "attempting",
    "streaming",
    "validating",
    "completed",
]
