"""Capacity and cost planning for self-hosting a model, dense or Mixture-of-Experts."""

from turnout.plan.capacity import (
    Assumptions,
    CloudPrice,
    Plan,
    Traffic,
    cost_per_mtok,
    experts_touched,
    kv_bytes_per_token,
    plan,
    weight_bytes,
)
from turnout.plan.hardware import GPUS, Hardware, gpu
from turnout.plan.models import MODELS, ModelFacts, model

__all__ = [
    "GPUS",
    "MODELS",
    "Assumptions",
    "CloudPrice",
    "Hardware",
    "ModelFacts",
    "Plan",
    "Traffic",
    "cost_per_mtok",
    "experts_touched",
    "gpu",
    "kv_bytes_per_token",
    "model",
    "plan",
    "weight_bytes",
]
