"""Live signals from inference servers: vLLM's and llama.cpp's own view of their load.

Pure parsers from the servers' documented endpoints to one `Signal`; the gateway scrapes and
hands the result to `LoadTracker.apply`. Metrics this code does not know are ignored, and any
field a server does not expose stays None, so an older or newer server degrades, not fails.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_SAMPLE = re.compile(
    r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)"
)
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class Signal:
    """One scrape of an instance: what it says it is doing right now."""

    at: float  # when it was scraped (the tracker's clock)
    running: int | None = None  # requests in the running batch
    waiting: int | None = None  # requests queued inside the server
    kv_usage: float | None = None  # KV cache in use, 0..1
    slots: int | None = None  # how many requests it can run at once, where it says
    prompt_tokens_total: float | None = None  # counters: throughput between two scrapes
    generation_tokens_total: float | None = None
    decoding: tuple[int, ...] = ()  # llama.cpp /slots: tokens decoded so far per busy slot

    @property
    def in_system(self) -> int | None:
        if self.running is None and self.waiting is None:
            return None
        return (self.running or 0) + (self.waiting or 0)


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_prometheus(text: str) -> Iterator[Sample]:
    """Samples of the Prometheus text exposition format (comments and timestamps skipped)."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        try:
            value = float(m["value"])
        except ValueError:
            continue
        labels = dict(_LABEL.findall(m["labels"] or ""))
        yield Sample(m["name"], labels, value)


def _sums(text: str, model: str | None) -> dict[str, float]:
    """Each metric summed over its series (one server may serve several model names)."""
    out: dict[str, float] = {}
    for s in parse_prometheus(text):
        if model is not None and s.labels.get("model_name", model) != model:
            continue
        if math.isnan(s.value):
            continue
        out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def _int(v: float | None) -> int | None:
    return None if v is None else round(v)


def vllm_signal(text: str, at: float, model: str | None = None) -> Signal:
    """vLLM's `/metrics`. `model` picks one `model_name` series when a server has several.

    KV usage is `vllm:gpu_cache_usage_perc` (V0) or `vllm:kv_cache_usage_perc` (V1); both are
    fractions in 0..1 despite the name.
    """
    m = _sums(text, model)
    kv = m.get("vllm:kv_cache_usage_perc", m.get("vllm:gpu_cache_usage_perc"))
    return Signal(
        at=at,
        running=_int(m.get("vllm:num_requests_running")),
        waiting=_int(m.get("vllm:num_requests_waiting")),
        kv_usage=kv,
        prompt_tokens_total=m.get("vllm:prompt_tokens_total"),
        generation_tokens_total=m.get("vllm:generation_tokens_total"),
    )


def llamacpp_signal(text: str, at: float) -> Signal:
    """llama.cpp server's `/metrics` (started with `--metrics`)."""
    m = _sums(text, None)
    return Signal(
        at=at,
        running=_int(m.get("llamacpp:requests_processing")),
        waiting=_int(m.get("llamacpp:requests_deferred")),
        kv_usage=m.get("llamacpp:kv_cache_usage_ratio"),
        prompt_tokens_total=m.get("llamacpp:prompt_tokens_total"),
        generation_tokens_total=m.get("llamacpp:tokens_predicted_total"),
    )


def _busy(slot: Mapping[str, Any]) -> bool:
    if "is_processing" in slot:  # newer servers
        return bool(slot["is_processing"])
    return bool(slot.get("state", 0) != 0)  # older: 0 idle, 1 processing


def llamacpp_slots_signal(slots: Any, at: float) -> Signal:
    """llama.cpp server's `/slots` JSON: one object per slot; its size bounds the batch."""
    if not isinstance(slots, list):
        raise ValueError(f"/slots: expected a JSON list, got {type(slots).__name__}")
    busy = [s for s in slots if isinstance(s, dict) and _busy(s)]
    decoded = tuple(
        int((s.get("next_token") or {}).get("n_decoded") or 0)
        if isinstance(s.get("next_token"), dict)
        else int(s.get("n_decoded") or 0)
        for s in busy
    )
    return Signal(at=at, running=len(busy), waiting=None, slots=len(slots), decoding=decoded)


def merge(a: Signal, b: Signal) -> Signal:
    """Two views of one instance (llama.cpp's /metrics and /slots): b's known fields win."""
    return Signal(
        at=max(a.at, b.at),
        running=b.running if b.running is not None else a.running,
        waiting=b.waiting if b.waiting is not None else a.waiting,
        kv_usage=b.kv_usage if b.kv_usage is not None else a.kv_usage,
        slots=b.slots if b.slots is not None else a.slots,
        prompt_tokens_total=b.prompt_tokens_total
        if b.prompt_tokens_total is not None
        else a.prompt_tokens_total,
        generation_tokens_total=b.generation_tokens_total
        if b.generation_tokens_total is not None
        else a.generation_tokens_total,
        decoding=b.decoding or a.decoding,
    )


def decode_rate(before: Signal, after: Signal) -> float | None:
    """Generated tokens per second between two scrapes, when the counters allow it."""
    g0, g1 = before.generation_tokens_total, after.generation_tokens_total
    dt = after.at - before.at
    if g0 is None or g1 is None or dt <= 0 or g1 < g0:  # a counter that went back: a restart
        return None
    return (g1 - g0) / dt
