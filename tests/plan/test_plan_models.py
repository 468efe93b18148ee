"""Model presets against their published figures."""

import pytest

from turnout.plan.capacity import kv_bytes_per_token, weight_bytes
from turnout.plan.models import MODELS, model

KIB = 1024


def test_mixtral_8x7b_has_46_7b_total_and_12_9b_active_parameters() -> None:
    m = model("mixtral-8x7b")
    assert (m.total_params, m.active_params) == (46.7e9, 12.9e9)
    assert (m.experts, m.experts_per_token) == (8, 2)


def test_mixtral_expert_size_derived_from_totals_matches_its_architecture() -> None:
    # Each expert is a SwiGLU FFN: 3 × hidden 4096 × intermediate 14336, in each of 32 layers.
    from_architecture = 3 * 4096 * 14336 * 32
    assert model("mixtral-8x7b").expert_params == pytest.approx(from_architecture, rel=0.01)


def test_qwen3_and_deepseek_expert_sizes_match_their_configs() -> None:
    # moe_intermediate_size: Qwen3-235B-A22B 1536 (hidden 4096, 94 MoE layers);
    # DeepSeek-V3 2048 (hidden 7168, 58 MoE layers after 3 dense ones).
    assert model("qwen3-235b-a22b").expert_params == pytest.approx(3 * 4096 * 1536 * 94, rel=0.01)
    assert model("deepseek-v3").expert_params == pytest.approx(3 * 7168 * 2048 * 58, rel=0.01)


@pytest.mark.parametrize(
    ("name", "kib_per_token"),
    [
        ("llama-3.1-8b", 128),  # 32 layers × 8 KV heads × 128 dim × (K, V) × 2 bytes
        ("mixtral-8x7b", 128),  # same attention shape as Mistral 7B
        ("llama-3.1-70b", 320),  # 80 layers × 8 × 128 × 2 × 2
        ("qwen3-235b-a22b", 188),  # 94 layers × 4 × 128 × 2 × 2
    ],
)
def test_kv_cache_per_token_at_16_bits(name: str, kib_per_token: int) -> None:
    assert kv_bytes_per_token(model(name)) == kib_per_token * KIB


def test_deepseek_v3_kv_cache_is_its_mla_latent_not_per_head_keys_and_values() -> None:
    m = model("deepseek-v3")
    # (kv_lora_rank 512 + decoupled rope key 64) × 61 layers × 2 bytes = 70,272 bytes
    assert kv_bytes_per_token(m) == (512 + 64) * 61 * 2
    per_head = m.layers * m.kv_heads * m.head_dim * 2 * 2
    assert kv_bytes_per_token(m) < per_head / 50


def test_weights_of_every_expert_stay_resident() -> None:
    assert weight_bytes(model("mixtral-8x7b")) == pytest.approx(93.4e9)
    assert weight_bytes(model("deepseek-v3")) == pytest.approx(671e9)  # FP8 as released


def test_lower_precision_shrinks_weights_and_cache() -> None:
    m = model("llama-3.1-8b").with_precision(bytes_per_weight=0.5, bytes_per_kv=1)
    assert weight_bytes(m) == pytest.approx(4.015e9)
    assert kv_bytes_per_token(m) == 64 * KIB


def test_dense_models_have_no_expert_share() -> None:
    for m in MODELS.values():
        if not m.is_moe:
            assert m.expert_params == 0 and m.shared_params == m.total_params


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(LookupError, match="mixtral-8x7b"):
        model("gpt-5")
