"""The capacity arithmetic: experts touched, bandwidth-bound decode, compute-bound prefill,
concurrency, and cost per million tokens."""

import math

import pytest

from turnout.plan.capacity import (
    Assumptions,
    CloudPrice,
    Traffic,
    cost_per_mtok,
    decode_bytes_per_step,
    decode_step_seconds,
    experts_touched,
    max_concurrency,
    min_accelerators,
    plan,
    prefill_tokens_per_s,
)
from turnout.plan.hardware import gpu
from turnout.plan.models import model

IDEAL = Assumptions(memory_fraction=1.0, bandwidth_efficiency=1.0, compute_efficiency=1.0)
TRAFFIC = Traffic(requests_per_s=2, input_tokens=1000, output_tokens=200)


def test_experts_touched_by_a_batch() -> None:
    assert experts_touched(8, 2, 1) == pytest.approx(2)
    assert experts_touched(8, 2, 4) == pytest.approx(8 * (1 - 0.75**4))
    assert experts_touched(8, 2, 64) == pytest.approx(8, abs=1e-6)
    assert experts_touched(256, 8, 1) == pytest.approx(8)
    assert experts_touched(1, 1, 100) == 1


def test_one_token_of_an_moe_reads_only_its_active_weights() -> None:
    m = model("mixtral-8x7b")
    assert decode_bytes_per_step(m, 1, 0) == pytest.approx(12.9e9 * 2)


def test_a_large_batch_of_an_moe_reads_every_expert() -> None:
    m = model("mixtral-8x7b")
    assert decode_bytes_per_step(m, 256, 0) == pytest.approx(46.7e9 * 2, rel=1e-6)


def test_decode_reads_each_sequences_kv_cache() -> None:
    m = model("llama-3.1-8b")
    extra = decode_bytes_per_step(m, 4, 1000) - decode_bytes_per_step(m, 4, 0)
    assert extra == 4 * 1000 * 128 * 1024


def test_single_sequence_decode_is_bandwidth_over_weight_bytes() -> None:
    # Llama-3.1-8B at 16 bits on an H100 SXM: 3.35 TB/s ÷ 16.06 GB ≈ 209 tokens/s at best.
    step, bound = decode_step_seconds(model("llama-3.1-8b"), gpu("h100-sxm"), 1, 1, 0, IDEAL)
    assert bound == "memory"
    assert 1 / step == pytest.approx(3.35e12 / 16.06e9)


def test_decode_turns_compute_bound_when_the_batch_is_large_enough() -> None:
    m, hw = model("llama-3.1-8b"), gpu("h100-sxm")
    assert decode_step_seconds(m, hw, 1, 8, 100, IDEAL)[1] == "memory"
    assert decode_step_seconds(m, hw, 1, 4096, 100, IDEAL)[1] == "compute"


def test_prefill_is_peak_flops_over_flops_per_token() -> None:
    m, hw = model("llama-3.1-8b"), gpu("h100-sxm")
    short = prefill_tokens_per_s(m, hw, 1, 2, IDEAL)
    assert short == pytest.approx(989e12 / (2 * 8.03e9), rel=1e-3)
    assert prefill_tokens_per_s(m, hw, 1, 32000, IDEAL) < short  # attention grows with context


def test_fp8_weights_use_fp8_tensor_cores_where_the_gpu_has_them() -> None:
    m = model("llama-3.1-8b")
    fp8 = m.with_precision(bytes_per_weight=1)
    assert prefill_tokens_per_s(fp8, gpu("h100-sxm"), 1, 2, IDEAL) == pytest.approx(
        2 * prefill_tokens_per_s(m, gpu("h100-sxm"), 1, 2, IDEAL), rel=1e-3
    )
    assert prefill_tokens_per_s(fp8, gpu("a100-80gb"), 1, 2, IDEAL) == pytest.approx(
        prefill_tokens_per_s(m, gpu("a100-80gb"), 1, 2, IDEAL)
    )


def test_concurrency_is_the_kv_budget_over_the_cache_per_sequence() -> None:
    m, hw = model("llama-3.1-8b"), gpu("h100-sxm")
    budget = 80e9 - 16.06e9
    assert max_concurrency(m, hw, 1, 4096, IDEAL) == int(budget // (4096 * 128 * 1024))


def test_a_model_too_big_for_one_gpu_needs_more() -> None:
    m, hw = model("llama-3.1-70b"), gpu("h100-sxm")
    assert max_concurrency(m, hw, 1, 1000, Assumptions()) == 0
    assert min_accelerators(m, hw, 1000, Assumptions()) == 2
    assert min_accelerators(model("deepseek-v3"), hw, 1000, Assumptions()) == 10


def test_cost_per_mtok_amortises_the_hourly_price() -> None:
    assert cost_per_mtok(3.0, 1000, 1.0) == pytest.approx(3.0 / 3.6)
    assert cost_per_mtok(3.0, 1000, 0.5) == pytest.approx(2 * 3.0 / 3.6)
    assert cost_per_mtok(3.0, 1000, 0) == math.inf
    assert cost_per_mtok(3.0, 0, 1) == math.inf


def test_at_break_even_self_hosting_costs_the_cloud_price() -> None:
    cloud = CloudPrice(input_per_mtok=0.15, output_per_mtok=0.60)
    p = plan(model("mixtral-8x7b"), gpu("h100-sxm"), TRAFFIC, count=2, cloud=cloud)
    blended = (1000 * 0.15 + 200 * 0.60) / 1200
    assert p.cloud_per_mtok == pytest.approx(blended)
    assert p.break_even_utilisation is not None and 0 < p.break_even_utilisation < 1
    assert p.cost_per_mtok(p.break_even_utilisation) == pytest.approx(blended)


def test_a_plan_sizes_replicas_for_the_traffic() -> None:
    p = plan(model("llama-3.1-8b"), gpu("l4"), Traffic(50, 1000, 200), count=1)
    assert p.fits and p.replicas >= 2
    assert p.replicas * p.capacity_requests_per_s >= 50
    assert p.utilisation == pytest.approx(50 / (p.replicas * p.capacity_requests_per_s))


def test_a_plan_that_does_not_fit_says_how_many_accelerators_it_needs() -> None:
    p = plan(model("llama-3.1-70b"), gpu("l4"), TRAFFIC, count=1)
    assert not p.fits and p.decode_tokens_per_s == 0
    assert p.min_accelerators == 7
    assert "7 × l4" in p.notes[0]


def test_memory_limits_the_batch_when_sequences_are_long() -> None:
    p = plan(model("llama-3.1-8b"), gpu("l4"), Traffic(1, 30000, 2000), count=1)
    assert p.batch == p.max_concurrency < 256
    assert any("limits the batch" in n for n in p.notes)


def test_plan_to_dict_is_plain_data() -> None:
    import orjson

    p = plan(model("deepseek-v3"), gpu("h200"), TRAFFIC, count=8, cloud=CloudPrice(0.27, 1.10))
    data = orjson.loads(orjson.dumps(p.to_dict()))
    assert data["model"]["name"] == "deepseek-v3"
    assert data["break_even_utilisation"] == pytest.approx(p.break_even_utilisation)
