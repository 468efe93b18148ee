"""The capacity and cost arithmetic of self-hosting a model.

Decode is bounded by memory bandwidth: every step reads the weights it touches and the KV cache
of every sequence in the batch. A Mixture-of-Experts model keeps all its experts resident but a
step reads only the experts its batch routes to — E·(1 − (1 − k/E)^B) per layer for batch B,
the expected number of distinct experts B tokens pick when each picks k of E uniformly. Prefill
is bounded by compute. Costs follow from the hourly price and the tokens served per hour.

These are roofline estimates: they say what the hardware allows, not what a given engine
achieves; `Assumptions` holds the efficiency factors that close most of that gap.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from turnout.plan.hardware import Hardware
from turnout.plan.models import ModelFacts


@dataclass(frozen=True, slots=True)
class Traffic:
    requests_per_s: float
    input_tokens: float  # mean prompt length
    output_tokens: float  # mean completion length
    input_p95: float | None = None  # for sizing the KV cache of long requests
    output_p95: float | None = None

    @property
    def tokens_per_request(self) -> float:
        return self.input_tokens + self.output_tokens

    @property
    def p95_tokens_per_request(self) -> float:
        return (self.input_p95 or self.input_tokens) + (self.output_p95 or self.output_tokens)


@dataclass(frozen=True, slots=True)
class Assumptions:
    memory_fraction: float = 0.90  # usable for weights + KV; the rest: activations, runtime
    bandwidth_efficiency: float = 0.80  # achieved share of peak bandwidth while decoding
    compute_efficiency: float = 0.50  # achieved share of peak FLOP/s while prefilling (MFU)
    max_batch: int = 256  # sequences an engine decodes together (vLLM's max_num_seqs default)


@dataclass(frozen=True, slots=True)
class CloudPrice:
    input_per_mtok: float
    output_per_mtok: float

    def blended_per_mtok(self, traffic: Traffic) -> float:
        """$ per million tokens of this traffic's mix, input and output counted alike."""
        spend = traffic.input_tokens * self.input_per_mtok
        spend += traffic.output_tokens * self.output_per_mtok
        return spend / traffic.tokens_per_request


# ---- the pieces ---------------------------------------------------------------------------------


def cost_per_mtok(hourly_usd: float, tokens_per_s: float, utilisation: float) -> float:
    """Amortised $ per million tokens of hardware that costs `hourly_usd` and serves
    `tokens_per_s` when busy, busy `utilisation` (0–1] of the time."""
    if tokens_per_s <= 0 or utilisation <= 0:
        return math.inf
    return hourly_usd / 3600 / (tokens_per_s * min(utilisation, 1.0)) * 1e6


def weight_bytes(m: ModelFacts) -> float:
    return m.total_params * m.bytes_per_weight  # every expert stays resident


def kv_bytes_per_token(m: ModelFacts) -> float:
    return m.kv_elements_per_token() * m.bytes_per_kv


def experts_touched(experts: int, per_token: int, batch: int) -> float:
    """Expected distinct experts per MoE layer that `batch` tokens route to."""
    if experts <= 1:
        return 1.0
    return experts * (1 - (1 - per_token / experts) ** batch)


def decode_bytes_per_step(m: ModelFacts, batch: int, context: float) -> float:
    """Bytes read by one decode step of `batch` sequences `context` tokens long."""
    weights = m.shared_params + m.expert_params * experts_touched(
        m.experts, m.experts_per_token, batch
    )
    if not m.is_moe:
        weights = m.total_params
    return weights * m.bytes_per_weight + batch * context * kv_bytes_per_token(m)


def flops_per_token(m: ModelFacts, context: float) -> float:
    """Forward FLOPs for one token attending to `context` earlier ones: 2 per active weight,
    plus QKᵀ and AV over the context."""
    attention = 4 * m.layers * m.attention_heads * m.head_dim * context
    return 2 * m.active_params + attention


def kv_budget_bytes(m: ModelFacts, hw: Hardware, count: int, a: Assumptions) -> float:
    return hw.memory_bytes * count * a.memory_fraction - weight_bytes(m)


def max_concurrency(m: ModelFacts, hw: Hardware, count: int, tokens: float, a: Assumptions) -> int:
    """Sequences of `tokens` tokens whose KV cache fits beside the weights."""
    budget = kv_budget_bytes(m, hw, count, a)
    return max(0, int(budget // (kv_bytes_per_token(m) * max(tokens, 1))))


def min_accelerators(m: ModelFacts, hw: Hardware, tokens: float, a: Assumptions) -> int:
    """The fewest accelerators that hold the weights and one sequence of `tokens`."""
    need = weight_bytes(m) + kv_bytes_per_token(m) * tokens
    return max(1, math.ceil(need / (hw.memory_bytes * a.memory_fraction)))


def decode_step_seconds(
    m: ModelFacts, hw: Hardware, count: int, batch: int, context: float, a: Assumptions
) -> tuple[float, str]:
    """Seconds per decode step and what bounds it ("memory" or "compute")."""
    memory = decode_bytes_per_step(m, batch, context) / (
        hw.bandwidth_bytes_s * count * a.bandwidth_efficiency
    )
    compute = (
        batch
        * flops_per_token(m, context)
        / (hw.peak_flops(m.bytes_per_weight) * count * a.compute_efficiency)
    )
    return (memory, "memory") if memory >= compute else (compute, "compute")


def prefill_tokens_per_s(
    m: ModelFacts, hw: Hardware, count: int, prompt_tokens: float, a: Assumptions
) -> float:
    peak = hw.peak_flops(m.bytes_per_weight) * count * a.compute_efficiency
    return peak / flops_per_token(m, prompt_tokens / 2)  # a prompt token sees half, on average


# ---- the plan -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    model: ModelFacts
    hardware: Hardware
    count: int
    traffic: Traffic
    assumptions: Assumptions
    hourly_usd: float  # for all `count` accelerators
    cloud: CloudPrice | None
    weight_bytes: float
    kv_bytes_per_token: float
    kv_bytes_per_sequence: float
    fits: bool
    min_accelerators: int
    max_concurrency: int
    max_concurrency_p95: int
    batch: int = 0
    experts_touched: float | None = None
    decode_tokens_per_s_single: float = 0.0  # one sequence alone
    decode_tokens_per_s: float = 0.0  # all sequences of `batch` together
    decode_per_sequence_tokens_per_s: float = 0.0
    decode_bound: str = ""
    prefill_tokens_per_s: float = 0.0
    ttft_s: float = 0.0  # prefill of a mean prompt on an idle deployment
    capacity_requests_per_s: float = 0.0  # per replica at full load
    capacity_tokens_per_s: float = 0.0  # input + output tokens
    replicas: int = 0
    utilisation: float = 0.0  # at the traffic's request rate
    notes: list[str] = field(default_factory=list)

    def cost_per_mtok(self, utilisation: float) -> float:
        """$ per million (input + output) tokens when busy `utilisation` of the time."""
        return cost_per_mtok(self.hourly_usd, self.capacity_tokens_per_s, utilisation)

    @property
    def cost_per_mtok_at_traffic(self) -> float:
        return self.cost_per_mtok(self.utilisation)

    @property
    def cloud_per_mtok(self) -> float | None:
        return None if self.cloud is None else self.cloud.blended_per_mtok(self.traffic)

    @property
    def break_even_utilisation(self) -> float | None:
        """The utilisation above which self-hosting is cheaper than the cloud price; above 1
        means never."""
        cloud = self.cloud_per_mtok
        if cloud is None or not self.fits or cloud <= 0:
            return None
        return self.cost_per_mtok(1.0) / cloud

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cost_per_mtok_at_full_load"] = _finite(self.cost_per_mtok(1.0))
        out["cost_per_mtok_at_traffic"] = _finite(self.cost_per_mtok_at_traffic)
        out["cloud_per_mtok"] = self.cloud_per_mtok
        out["break_even_utilisation"] = self.break_even_utilisation
        out["model"]["expert_params"] = self.model.expert_params
        out["model"]["shared_params"] = self.model.shared_params
        return out


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def plan(
    m: ModelFacts,
    hw: Hardware,
    traffic: Traffic,
    count: int = 1,
    cloud: CloudPrice | None = None,
    assumptions: Assumptions | None = None,
    hourly_usd: float | None = None,
) -> Plan:
    """Everything `turnout plan` reports for `count` × `hw` serving `m` under `traffic`."""
    a = assumptions or Assumptions()
    hourly = (hw.hourly_usd if hourly_usd is None else hourly_usd) * count
    mean_tokens = traffic.tokens_per_request
    p95_tokens = traffic.p95_tokens_per_request
    fits_mean = max_concurrency(m, hw, count, mean_tokens, a)
    common: dict[str, Any] = {
        "model": m,
        "hardware": hw,
        "count": count,
        "traffic": traffic,
        "assumptions": a,
        "hourly_usd": hourly,
        "cloud": cloud,
        "weight_bytes": weight_bytes(m),
        "kv_bytes_per_token": kv_bytes_per_token(m),
        "kv_bytes_per_sequence": kv_bytes_per_token(m) * mean_tokens,
        "fits": fits_mean >= 1,
        "min_accelerators": min_accelerators(m, hw, p95_tokens, a),
        "max_concurrency": fits_mean,
        "max_concurrency_p95": max_concurrency(m, hw, count, p95_tokens, a),
    }
    if fits_mean < 1:
        note = (
            f"does not fit: {weight_bytes(m) / 1e9:.1f} GB of weights and one sequence need "
            f"{common['min_accelerators']} × {hw.name}"
        )
        return Plan(**common, notes=[note])

    batch = min(fits_mean, a.max_batch)
    context = traffic.input_tokens + traffic.output_tokens / 2  # mean length while decoding
    single, _ = decode_step_seconds(m, hw, count, 1, context, a)
    step, bound = decode_step_seconds(m, hw, count, batch, context, a)
    prefill = prefill_tokens_per_s(m, hw, count, traffic.input_tokens, a)
    decode = batch / step
    # One request costs its prompt's prefill time and its share of the batched decode time.
    per_request_s = traffic.input_tokens / prefill + traffic.output_tokens / decode
    capacity_rps = 1 / per_request_s
    replicas = max(1, math.ceil(traffic.requests_per_s / capacity_rps))
    notes = []
    if m.context_window < p95_tokens:
        notes.append(f"p95 request ({p95_tokens:.0f} tokens) exceeds the context window")
    if batch < a.max_batch:
        notes.append(f"memory limits the batch to {batch} sequences")
    return Plan(
        **common,
        batch=batch,
        experts_touched=(
            experts_touched(m.experts, m.experts_per_token, batch) if m.is_moe else None
        ),
        decode_tokens_per_s_single=1 / single,
        decode_tokens_per_s=decode,
        decode_per_sequence_tokens_per_s=1 / step,
        decode_bound=bound,
        prefill_tokens_per_s=prefill,
        ttft_s=traffic.input_tokens / prefill,
        capacity_requests_per_s=capacity_rps,
        capacity_tokens_per_s=capacity_rps * mean_tokens,
        replicas=replicas,
        utilisation=min(1.0, traffic.requests_per_s / (replicas * capacity_rps)),
        notes=notes,
    )
