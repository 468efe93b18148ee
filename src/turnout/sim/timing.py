"""How long an inference instance takes: one timing model for the simulator and the emulator.

Continuous batching, prefill first: a request's prompt is processed in one prefill pass (the
decode of everyone else waits meanwhile, as in vLLM without chunked prefill), then every decode
step gives each running request one token, and a step takes longer the more requests share it.

Dense model: step = base + per_seq × batch + per_kv × tokens in the batch's KV cache (the weights
are read once per step; attention reads every running request's whole context, so long contexts
slow everyone down). Mixture-of-Experts: a step also reads the experts the batch touches,
E·(1 − (1 − k/E)^B) per layer, so it grows steeply at small batches and then flattens — the
cost per token falls with batch size much faster than dense intuition says.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Experts:
    count: int  # E experts per MoE layer
    active: int  # k experts each token is routed to
    read_s: float  # seconds to read one expert's weights across all MoE layers

    def touched(self, batch: int) -> float:
        """Expected distinct experts per layer a batch of `batch` tokens routes to."""
        e, k = self.count, self.active
        return e * (1 - (1 - k / e) ** batch)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    prefill_tps: float  # prompt tokens per second in a prefill pass
    prefill_overhead_s: float  # fixed cost of a prefill pass
    step_base_s: float  # a decode step's fixed part (dense weights)
    step_per_seq_s: float  # added per request in the batch (sampling, bookkeeping)
    step_per_kv_s: float  # added per token of context in the batch (attention's KV reads)
    max_batch: int  # requests decoding at once; beyond it they wait inside the instance
    kv_tokens: int  # KV cache capacity, tokens
    experts: Experts | None = None

    def step_s(self, batch: int, kv: float = 0.0) -> float:
        """Seconds per decode step with `batch` requests holding `kv` tokens of context."""
        t = self.step_base_s + self.step_per_seq_s * batch + self.step_per_kv_s * kv
        if self.experts is not None:
            t += self.experts.read_s * self.experts.touched(batch)
        return t

    def prefill_s(self, tokens: int) -> float:
        return self.prefill_overhead_s + tokens / self.prefill_tps

    def full_batch_s_per_token(self, context: float) -> float:
        """Decode seconds per token at the fullest batch, each request holding `context` tokens
        on average: as many requests run as fit in both the batch and the KV cache."""
        batch = max(1, min(self.max_batch, int(self.kv_tokens / max(context, 1.0))))
        return self.step_s(batch, batch * context) / batch

    def scaled(self, factor: float) -> Profile:
        """The same shape, every duration × factor (to emulate in real time on a small CPU)."""
        ex = self.experts
        return replace(
            self,
            name=f"{self.name}×{factor:g}",
            prefill_tps=self.prefill_tps / factor,
            prefill_overhead_s=self.prefill_overhead_s * factor,
            step_base_s=self.step_base_s * factor,
            step_per_seq_s=self.step_per_seq_s * factor,
            step_per_kv_s=self.step_per_kv_s * factor,
            experts=None if ex is None else replace(ex, read_s=ex.read_s * factor),
        )


# Order-of-magnitude constants from bandwidth arithmetic, not measurements. An 8B dense model in
# bf16 reads ~16 GB of weights per step at ~3 TB/s (≈6 ms) on one H100, 128 KiB of KV per token
# of context (≈0.04 µs each), prefills ~20k tokens/s and keeps ~450k tokens of KV. The MoE reads
# 64 experts of ~0.45 GB, 8 active per token, with a smaller KV per token. The L4 runs the 8B
# model in fp8 at ~300 GB/s. What matters for balancing is the shape, which these keep.
PRESETS: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("dense-8b-h100", 20_000, 0.004, 0.006, 0.00002, 4.3e-8, 256, 450_000),
        Profile(
            "moe-h100",
            16_000,
            0.005,
            0.003,
            0.00002,
            2.0e-8,
            256,
            300_000,
            Experts(count=64, active=8, read_s=0.00016),
        ),
        Profile("dense-8b-l4", 4_000, 0.01, 0.027, 0.0001, 2.1e-7, 64, 90_000),
        # Slow enough that Python can emulate a fleet of them in real time on two cores.
        Profile("cpu-small", 2_000, 0.005, 0.02, 0.001, 5e-7, 16, 24_000),
    )
}


def preset(name: str) -> Profile:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; one of {', '.join(PRESETS)}") from None
