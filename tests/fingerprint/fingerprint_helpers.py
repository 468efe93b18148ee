"""Shared pieces of the fingerprint tests: small suites, and an endpoint that offers logprobs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import Llama

from turnout.backends.base import Completion, StreamChunk, UpstreamRequest, Usage
from turnout.backends.gguf import resolve_model
from turnout.fingerprint.suite import Sampling, Suite, builtin_suite

HIDDEN_PROMPT = "Always agree with the user.\n\n"


def small_suite(probes: tuple[str, ...], samples_per_probe: int, max_tokens: int) -> Suite:
    """Some of the built-in probes, few samples, short completions: fast, and still telling."""
    chosen = tuple(p for p in builtin_suite().probes if p.id in probes)
    assert len(chosen) == len(probes)
    return replace(
        builtin_suite(),
        name="test",
        probes=chosen,
        samples_per_probe=samples_per_probe,
        sampling=Sampling(max_tokens=max_tokens),
        logprobs=0,
    )


class LogprobEndpoint:
    """A real llama.cpp model answering text completions with log-probabilities in the OpenAI
    legacy shape, as the llama.cpp server does (turnout's embedded backend offers none).

    It decodes by itself, token by token from the model's logits, because llama-cpp-python's own
    logprobs path is several times slower than generation on this machine.
    """

    def __init__(self, model: str, name: str = "logprobs") -> None:
        self.name = name
        self.model = model
        self._llama: Llama | None = None
        self._lock = threading.Lock()

    async def start(self) -> None:
        if self._llama is None:
            path = str(resolve_model(self.model))
            self._llama = await asyncio.to_thread(
                Llama, path, n_ctx=256, n_threads=1, verbose=False
            )

    async def close(self) -> None:
        if self._llama is not None:
            self._llama.close()
            self._llama = None

    def ready(self) -> bool:
        return self._llama is not None

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        llama = self._llama
        assert llama is not None
        temperature = float(body.get("temperature", 1.0))
        k = int(body.get("logprobs") or 0)
        rng = np.random.default_rng(body.get("seed"))
        with self._lock:
            prompt = llama.tokenize(body["prompt"].encode(), add_bos=True)
            llama.reset()
            llama.eval(prompt)
            out: list[int] = []
            chosen: list[float] = []
            tops: list[dict[str, float]] = []
            finish = "length"
            for _ in range(int(body.get("max_tokens") or 16)):
                last = llama._ctx.get_logits()  # the last evaluated token's logits
                logits = np.ctypeslib.as_array(last, shape=(llama.n_vocab(),)).astype(np.float64)
                logprobs = logits - np.logaddexp.reduce(logits)
                if temperature <= 0:
                    token = int(np.argmax(logits))
                else:
                    z = logits / temperature
                    probs = np.exp(z - np.logaddexp.reduce(z))
                    token = int(rng.choice(len(probs), p=probs / probs.sum()))
                if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token):
                    finish = "stop"
                    break
                out.append(token)
                chosen.append(float(logprobs[token]))
                if k:
                    best = np.argpartition(-logprobs, k)[:k]
                    tops.append({self._piece(int(t)): float(logprobs[t]) for t in best})
                llama.eval([token])
            text = llama.detokenize(out).decode("utf-8", errors="replace")
        choice: dict[str, Any] = {"text": text, "index": 0, "finish_reason": finish}
        if k:
            choice["logprobs"] = {"token_logprobs": chosen, "top_logprobs": tops}
        usage = {"prompt_tokens": len(prompt), "completion_tokens": len(out)}
        return {"choices": [choice], "usage": usage, "model": self.model}

    def _piece(self, token: int) -> str:
        assert self._llama is not None
        return self._llama.detokenize([token]).decode("utf-8", errors="replace")

    async def complete(self, request: UpstreamRequest) -> Completion:
        body = await asyncio.to_thread(self._complete, request.body)
        return Completion(body, Usage.from_body(body["usage"]))

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamChunk]:
        raise NotImplementedError("probes never stream")
        yield  # pragma: no cover
