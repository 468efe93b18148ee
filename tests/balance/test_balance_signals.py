"""Parsing the servers' own load reports, and folding them into the fleet state."""

from __future__ import annotations

import random

from turnout.routing.balance import Ask
from turnout.routing.signals import (
    decode_rate,
    llamacpp_signal,
    llamacpp_slots_signal,
    merge,
    parse_prometheus,
    vllm_signal,
)
from turnout.routing.tracker import LoadTracker

VLLM_V0 = """\
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.0
# HELP vllm:num_requests_swapped Number of requests swapped to CPU.
# TYPE vllm:num_requests_swapped gauge
vllm:num_requests_swapped{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.4375
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 182733.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 90412.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.01",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
vllm:time_to_first_token_seconds_sum{model_name="meta-llama/Llama-3.1-8B-Instruct"} 41.2
"""

VLLM_V1 = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="qwen"} 7.0
vllm:num_requests_running{engine="1",model_name="qwen"} 5.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="qwen"} 0.0
vllm:num_requests_waiting{engine="1",model_name="qwen"} 1.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="qwen"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="qwen"} 0.5
vllm:num_requests_running{engine="0",model_name="other"} 40.0
"""

LLAMACPP = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 5120
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 2048
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 412.5
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.125
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
"""

SLOTS_NEW = [
    {
        "id": 0,
        "n_ctx": 4096,
        "is_processing": True,
        "next_token": {"has_next_token": True, "n_remain": -1, "n_decoded": 37},
    },
    {
        "id": 1,
        "n_ctx": 4096,
        "is_processing": False,
        "next_token": {"has_next_token": False, "n_remain": -1, "n_decoded": 0},
    },
    {
        "id": 2,
        "n_ctx": 4096,
        "is_processing": True,
        "next_token": {"has_next_token": True, "n_remain": 10, "n_decoded": 5},
    },
    {"id": 3, "n_ctx": 4096, "is_processing": False, "next_token": {"n_decoded": 0}},
]
SLOTS_OLD = [{"id": 0, "state": 1, "n_decoded": 12}, {"id": 1, "state": 0, "n_decoded": 0}]


def test_vllm_v0_metrics() -> None:
    s = vllm_signal(VLLM_V0, at=5.0)
    assert (s.running, s.waiting, s.kv_usage) == (12, 3, 0.4375)
    assert s.in_system == 15
    assert s.generation_tokens_total == 90412.0


def test_vllm_v1_metrics_sum_engines_for_the_chosen_model() -> None:
    s = vllm_signal(VLLM_V1, at=0.0, model="qwen")
    assert (s.running, s.waiting, s.kv_usage) == (12, 1, 0.75)
    assert vllm_signal(VLLM_V1, at=0.0).running == 52  # no model named: every series


def test_llamacpp_metrics() -> None:
    s = llamacpp_signal(LLAMACPP, at=1.0)
    assert (s.running, s.waiting, s.kv_usage) == (2, 1, 0.125)
    assert s.prompt_tokens_total == 5120


def test_llamacpp_slots_newer_and_older_formats() -> None:
    s = llamacpp_slots_signal(SLOTS_NEW, at=1.0)
    assert (s.running, s.slots, s.decoding) == (2, 4, (37, 5))
    old = llamacpp_slots_signal(SLOTS_OLD, at=1.0)
    assert (old.running, old.slots, old.decoding) == (1, 2, (12,))


def test_metrics_and_slots_merge_into_one_view() -> None:
    both = merge(llamacpp_signal(LLAMACPP, at=1.0), llamacpp_slots_signal(SLOTS_NEW, at=2.0))
    assert (both.running, both.waiting, both.slots, both.at) == (2, 1, 4, 2.0)


def test_garbage_lines_are_skipped_not_fatal() -> None:
    text = "not a metric line {\nvllm:num_requests_running NaN\nok_metric 3\n"
    assert [s.name for s in parse_prometheus(text)] == ["vllm:num_requests_running", "ok_metric"]
    assert vllm_signal(text, at=0).running is None


def test_decode_rate_between_scrapes_and_counter_resets() -> None:
    a = vllm_signal(VLLM_V0, at=0.0)
    b = vllm_signal(VLLM_V0.replace("90412.0", "91412.0"), at=2.0)
    assert decode_rate(a, b) == 500.0
    assert decode_rate(b, a) is None


def test_signals_steer_the_tracker_and_slots_bound_the_batch() -> None:
    now = [10.0]
    tracker = LoadTracker(["a", "b"], clock=lambda: now[0], rng=random.Random(0))
    tracker.apply("a", vllm_signal(VLLM_V0, at=10.0))  # a is busy with others' traffic
    assert tracker.pick(Ask(10), strategy="least_requests") == "b"
    assert tracker.pick(Ask(10), strategy="least_work") == "b"
    tracker.apply("b", llamacpp_slots_signal(SLOTS_NEW, at=10.0))
    assert tracker.instances["b"].max_batch == 4
