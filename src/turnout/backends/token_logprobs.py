"""Log-probabilities for the embedded backend, in OpenAI's two response shapes.

llama-cpp-python returns logprobs only from a model loaded with `logits_all`, which keeps a
context × vocabulary array of scores per instance (400 MB for SmolLM2, 2 GB for Gemma 3). Instead a
logits processor sees each step's raw logits as they are handed to the sampler, keeps their
log-softmax until the sampled token is known, and returns them unchanged: what is sampled is the
same with or without logprobs. The values are the model's own (before temperature, top-p and
penalties), as OpenAI and llama.cpp's server report them.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from .base import Failure, Operation, UpstreamError

MAX_TOP = 20  # OpenAI's own limit on top_logprobs


class _Model(Protocol):
    def detokenize(self, tokens: list[int]) -> bytes: ...

    def token_eos(self) -> int: ...


def _bad_request(message: str) -> UpstreamError:
    return UpstreamError(Failure.CLIENT_ERROR, message, status=400)


def requested(body: dict[str, Any], operation: Operation) -> int | None:
    """How many alternatives per token the request asks for; None when it asks for no logprobs.

    Completions: `logprobs: N`. Chat: `logprobs: true` with an optional `top_logprobs: N`.
    """
    if operation is Operation.COMPLETION:
        k = body.get("logprobs")
        if k is None:
            return None
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_TOP:
            raise _bad_request(f"'logprobs' must be an integer from 0 to {MAX_TOP}")
        return k
    on = body.get("logprobs")
    top = body.get("top_logprobs")
    if on is not None and not isinstance(on, bool):
        raise _bad_request("'logprobs' must be true or false")
    if top is not None and (
        isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP
    ):
        raise _bad_request(f"'top_logprobs' must be an integer from 0 to {MAX_TOP}")
    if not on:
        if top:
            raise _bad_request("'top_logprobs' needs 'logprobs': true")
        return None
    return top or 0


class Recorder:
    """A logits processor that records each sampled token's log-probability and top-k."""

    def __init__(self, model: _Model, top_k: int, is_end: Any) -> None:
        self._model = model
        self._top_k = top_k
        self._is_end = is_end  # token id → True for end-of-generation tokens
        self._pending: np.ndarray | None = None
        self.tokens: list[int] = []
        self.chosen: list[float] = []
        self.tops: list[list[tuple[int, float]]] = []

    def __call__(self, input_ids: Any, logits: np.ndarray) -> np.ndarray:
        x = np.asarray(logits, dtype=np.float64)
        top = x.max()
        self._pending = x - (top + np.log(np.exp(x - top).sum()))
        return logits

    def took(self, token: int) -> None:
        """The token the sampler picked from the latest logits."""
        lp, self._pending = self._pending, None
        if lp is None or self._is_end(token):
            return  # end tokens are not part of the answer, as in llama.cpp's server
        self.tokens.append(token)
        self.chosen.append(float(lp[token]))
        if self._top_k:
            best = np.argpartition(-lp, self._top_k)[: self._top_k]
            best = best[np.argsort(-lp[best])]
            self.tops.append([(int(t), float(lp[t])) for t in best])

    def _piece(self, token: int) -> str:
        return self._model.detokenize([token]).decode("utf-8", errors="replace")

    def _alternatives(self, top: list[tuple[int, float]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for token, value in top:  # likeliest first: two tokens that read alike keep the likelier
            out.setdefault(self._piece(token), value)
        return out

    def _kept(self, text: str) -> int:
        """How many recorded tokens the answer's text holds (a stop sequence may cut it)."""
        length = 0
        for i, token in enumerate(self.tokens):
            length += len(self._piece(token))
            if length > len(text) + 4:  # a few characters of slack for partial UTF-8
                return i
        return len(self.tokens)

    def attach(self, response: dict[str, Any], operation: Operation) -> None:
        """Add the recorded log-probabilities to a non-streaming response, in OpenAI's shape."""
        choice = response["choices"][0]
        if operation is Operation.COMPLETION:
            n = self._kept(choice.get("text") or "")
            choice["logprobs"] = {
                "tokens": [self._piece(t) for t in self.tokens[:n]],
                "token_logprobs": self.chosen[:n],
                "top_logprobs": [self._alternatives(top) for top in self.tops[:n]]
                if self._top_k
                else None,
            }
            return
        n = self._kept((choice.get("message") or {}).get("content") or "")

        def entry(token: int, value: float) -> dict[str, Any]:
            piece = self._piece(token)
            return {"token": piece, "logprob": value, "bytes": list(piece.encode())}

        choice["logprobs"] = {
            "content": [
                {
                    **entry(t, v),
                    "top_logprobs": [entry(a, w) for a, w in (self.tops[i] if self._top_k else ())],
                }
                for i, (t, v) in enumerate(zip(self.tokens[:n], self.chosen[:n], strict=True))
            ]
        }
