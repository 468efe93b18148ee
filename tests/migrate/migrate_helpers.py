"""The recorded traffic the migration tests replay: prompts, config, where it lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from upstream import MODEL_ID, ScriptedUpstream

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
MORE_CHATS = (
    "What colour is grass?",
    "Name a fruit.",
    "What is 3+3?",
    "Say goodbye.",
    "What is the smallest planet?",
    "How do I boil an egg?",
    "What is the opposite of up?",
    "How many days are in a week?",
    "Who wrote Hamlet?",
    "Suggest a name for a dog.",
    "What is the chemical symbol for water?",
    "What should I eat for lunch?",
    "Why do leaves fall?",
    "Give me a tip for sleeping well.",
    "What is a verb?",
    "What is the capital of Italy?",
    "Name an ocean.",
    "What is 10 minus 4?",
    "Say thank you.",
    "What is the hottest planet?",
    "How do I plant a seed?",
    "What is the opposite of fast?",
    "How many legs does a spider have?",
    "Who painted the Mona Lisa?",
)
JSON_ASKS = tuple(
    f"Reply with a JSON object with keys name and age for {who}."
    for who in ("Ann, 30", "Bob, 41", "Cleo, 25", "Dan, 19", "Eve, 52", "Finn, 7", "Gus, 63",
                "Hana, 34", "Ivo, 28")
)  # fmt: skip


def config_text(store: Path, extra: str = "") -> str:
    # `accept`: a truncated answer is recorded as it came (the tests keep max_tokens short).
    return f"""
store: {{url: "sqlite:///{store}", record_bodies: full, flush_interval_s: 0.05}}
deployments:
  edge: {{kind: embedded, model: smollm2-135m, max_concurrency: 2}}
  gemma: {{kind: embedded, model: gemma3-270m, max_concurrency: 2}}
  priced: {{kind: embedded, model: smollm2-135m, max_concurrency: 2,
           price: {{input_per_mtok: 1000, output_per_mtok: 1000}}}}
{extra}models:
  text: {{deployments: [edge], lifecycle: {{on_truncation: accept}}}}
  local: {{deployments: [edge], lifecycle: {{on_truncation: accept}}}}
"""


@dataclass(frozen=True)
class Traffic:
    config: Path
    store: Path


def prompt_of(body: dict[str, Any]) -> str:
    if isinstance(body.get("prompt"), str):
        return str(body["prompt"])
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    return str(users[-1]["content"]) if users else ""


class EchoUpstream(ScriptedUpstream):
    """A real loopback OpenAI-protocol server that answers every request with its own prompt: a
    candidate that repeats the question instead of answering it."""

    async def _handle(self, request: web.Request, at: float) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        text = prompt_of(body)
        usage = {"prompt_tokens": len(text) // 4 + 1, "completion_tokens": len(text) // 4 + 1}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if request.path.endswith("/chat/completions"):
            choice: dict[str, Any] = {"message": {"role": "assistant", "content": text}}
            kind = "chat.completion"
        else:
            choice, kind = {"text": text}, "text_completion"
        choice.update(index=0, finish_reason="stop")
        return web.json_response(
            {"id": "echo", "object": kind, "created": int(at), "model": MODEL_ID,
             "choices": [choice], "usage": usage}
        )  # fmt: skip
