"""The recorded traffic the migration tests replay: prompts, config, where it lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

COMPLETIONS = (
    "The capital of France is",
    "Three primary colours are",
    "A haiku about rain:",
    "2 + 2 =",
    "The largest planet in the solar system is",
    "To make a cup of tea, first",
    "The opposite of hot is",
    "Water boils at",
    "The first president of the United States was",
    "A good name for a cat is",
    "The chemical symbol for gold is",
    "In the morning I like to",
)
CHATS = (
    "What is the capital of France?",
    "Name three colours.",
    "What is 2+2?",
    "Say hello.",
    "What is the largest planet?",
    "How do I make tea?",
    "What is the opposite of hot?",
    "At what temperature does water boil?",
    "Who was the first US president?",
    "Suggest a name for a cat.",
    "What is the chemical symbol for gold?",
    "What should I eat for breakfast?",
    "Why is the sky blue?",
    "Give me a tip for learning to cook.",
    "What is a noun?",
)
SYSTEM = "You are a helpful assistant."


def config_text(store: Path) -> str:
    # `accept`: a truncated answer is recorded as it came (the tests keep max_tokens short).
    return f"""
store: {{url: "sqlite:///{store}", record_bodies: full, flush_interval_s: 0.05}}
deployments:
  edge: {{kind: embedded, model: smollm2-135m, max_concurrency: 2}}
  gemma: {{kind: embedded, model: gemma3-270m, max_concurrency: 2}}
  priced: {{kind: embedded, model: smollm2-135m, max_concurrency: 2,
           price: {{input_per_mtok: 1000, output_per_mtok: 1000}}}}
models:
  text: {{deployments: [edge], lifecycle: {{on_truncation: accept}}}}
  local: {{deployments: [edge], lifecycle: {{on_truncation: accept}}}}
"""


@dataclass(frozen=True)
class Traffic:
    config: Path
    store: Path
