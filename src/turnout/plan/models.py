"""Model facts for capacity planning, and presets for a few public models.

The facts are the published architecture numbers (model cards and `config.json`); everything a
plan needs beyond them — bytes read per decode step, KV cache per token, FLOPs per token — is
derived in `capacity`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal


@dataclass(frozen=True, slots=True)
class ModelFacts:
    name: str
    total_params: float  # every weight, all experts included
    active_params: float  # the weights one token passes through
    layers: int
    attention_heads: int  # query heads
    kv_heads: int  # key/value heads (grouped-query attention)
    head_dim: int
    experts: int = 1  # routed experts per MoE layer; 1 for a dense model
    experts_per_token: int = 1
    bytes_per_weight: float = 2.0  # bf16; 1 for fp8/int8, 0.5 for 4-bit
    bytes_per_kv: float = 2.0
    context_window: int = 8192
    # Multi-head latent attention (DeepSeek-V2/V3) caches one compressed latent and one shared
    # rotary key per layer instead of keys and values per KV head.
    attention: Literal["gqa", "mla"] = "gqa"
    kv_lora_rank: int = 0
    rope_head_dim: int = 0
    source: str = ""

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    @property
    def expert_params(self) -> float:
        """Parameters of one routed expert summed over all MoE layers.

        From total = shared + E·x and active = shared + k·x: x = (total − active) / (E − k).
        """
        if not self.is_moe:
            return 0.0
        return (self.total_params - self.active_params) / (self.experts - self.experts_per_token)

    @property
    def shared_params(self) -> float:
        """Weights every token reads: attention, embeddings, norms, router, shared experts."""
        return self.total_params - self.experts * self.expert_params

    def kv_elements_per_token(self) -> int:
        if self.attention == "mla":
            return self.layers * (self.kv_lora_rank + self.rope_head_dim)
        return self.layers * self.kv_heads * self.head_dim * 2  # a key and a value

    def with_precision(
        self, bytes_per_weight: float | None = None, bytes_per_kv: float | None = None
    ) -> ModelFacts:
        weights = self.bytes_per_weight if bytes_per_weight is None else bytes_per_weight
        kv = self.bytes_per_kv if bytes_per_kv is None else bytes_per_kv
        return replace(self, bytes_per_weight=weights, bytes_per_kv=kv)


MODELS: dict[str, ModelFacts] = {
    m.name: m
    for m in (
        ModelFacts(
            "llama-3.1-8b", total_params=8.03e9, active_params=8.03e9, layers=32,
            attention_heads=32, kv_heads=8, head_dim=128, context_window=131072,
            source="meta-llama/Llama-3.1-8B config.json; 8.03B parameters",
        ),
        ModelFacts(
            "llama-3.1-70b", total_params=70.6e9, active_params=70.6e9, layers=80,
            attention_heads=64, kv_heads=8, head_dim=128, context_window=131072,
            source="meta-llama/Llama-3.1-70B config.json; 70.6B parameters",
        ),
        ModelFacts(
            "mixtral-8x7b", total_params=46.7e9, active_params=12.9e9, layers=32,
            attention_heads=32, kv_heads=8, head_dim=128, experts=8, experts_per_token=2,
            context_window=32768,
            source="Mixtral of Experts (arXiv:2401.04088): 46.7B total, 12.9B active",
        ),
        ModelFacts(
            "qwen3-235b-a22b", total_params=235e9, active_params=22e9, layers=94,
            attention_heads=64, kv_heads=4, head_dim=128, experts=128, experts_per_token=8,
            context_window=32768,
            source="Qwen/Qwen3-235B-A22B config.json: 94 layers, 64 Q / 4 KV heads, head dim"
            " 128, 128 experts, top-8",
        ),
        ModelFacts(
            "deepseek-v3", total_params=671e9, active_params=37e9, layers=61,
            attention_heads=128, kv_heads=128, head_dim=128, experts=256, experts_per_token=8,
            bytes_per_weight=1.0, context_window=131072, attention="mla", kv_lora_rank=512,
            rope_head_dim=64,
            source="DeepSeek-V3 technical report (arXiv:2412.19437): 671B total, 37B active,"
            " 61 layers, MLA (latent 512 + rope 64), 256 routed experts top-8 + 1 shared, FP8",
        ),
    )
}  # fmt: skip


def model(name: str) -> ModelFacts:
    try:
        return MODELS[name]
    except KeyError:
        raise LookupError(f"unknown model {name!r}; presets: {', '.join(MODELS)}") from None
