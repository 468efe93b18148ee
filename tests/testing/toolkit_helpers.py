"""Shared pieces of the turnout.testing tests: a gateway config for the scripted upstream."""

from __future__ import annotations

from typing import Any

import httpx

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look up an order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}, "verbose": {"type": "boolean"}},
                "required": ["order_id"],
            },
        },
    }
]


def upstream_config(base_url: str, **lifecycle: Any) -> str:
    """One model `m` on the scripted upstream: no backoff wait, a breaker that never opens."""
    policy = {"backoff": "{base_s: 0, max_s: 1}", "max_attempts": 3, **lifecycle}
    life = ", ".join(f"{k}: {v}" for k, v in policy.items())
    return f"""
deployments:
  up:
    kind: openai
    base_url: {base_url}
    model: upstream-model
    cooldown: {{failures: 100000, seconds: 1}}
models:
  m: {{deployments: [up], lifecycle: {{{life}}}}}
"""


def sse_events(url: str, body: dict[str, Any]) -> tuple[bytes, list[bytes]]:
    """POST a streaming chat request; the whole body and its SSE events (boundaries kept)."""
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}) as resp,
    ):
        assert resp.status_code == 200, resp.read()
        raw = b"".join(resp.iter_raw())
    events = [e + b"\n\n" for e in raw.split(b"\n\n") if e]
    return raw, events
