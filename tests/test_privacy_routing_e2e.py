"""Sensitive data never reaches an untrusted deployment: asserted on what the cloud received."""

from __future__ import annotations

import json
from collections.abc import Callable

from gateway_harness import RunningGateway
from lifecycle_helpers import sse_events
from upstream import ScriptedUpstream, Step

Factory = Callable[[str], RunningGateway]
CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"
SECRET_TEXT = f"My card is {CARD} and my email is {EMAIL}. Summarise that in one word."


def config(cloud_url: str, privacy: str, deployments: str = "[cloud, edge]") -> str:
    return f"""
deployments:
  edge: {{kind: embedded, model: smollm2-135m, tags: [local], max_concurrency: 1}}
  cloud: {{kind: openai, base_url: "{cloud_url}", model: gpt-x, tags: [cloud]}}
models:
  assistant: {{deployments: {deployments}, routing: ordered, privacy: {privacy}}}
"""


def _ask(gw: RunningGateway, text: str, stream: bool = False, conversation: str | None = None):
    headers = {"x-turnout-conversation-id": conversation} if conversation else {}
    return gw.http.post(
        "/v1/chat/completions",
        headers=headers,
        json={
            "model": "assistant",
            "max_tokens": 6,
            "stream": stream,
            "messages": [{"role": "user", "content": text}],
        },
    )


def _cloud_saw(upstream: ScriptedUpstream) -> str:
    return json.dumps([r.body for r in upstream.requests])


def test_block_keeps_sensitive_requests_local_streaming_included(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url, "block"))
    plain = _ask(gw, "What colour is the sky?")
    assert plain.headers["x-turnout-deployment"] == "cloud"
    for stream in (False, True):
        r = _ask(gw, SECRET_TEXT, stream=stream)
        assert r.status_code == 200
        assert r.headers["x-turnout-deployment"] == "edge"
        rec = gw.record(r.headers["x-turnout-request-id"])
        routed = rec["events"][1]["attrs"]
        assert routed["sensitive"] == {"email": 1, "payment_card": 1}
        cloud = next(c for c in routed["candidates"] if c["deployment"] == "cloud")
        assert cloud["rejected"].startswith("privacy: email×1, payment_card×1")
    assert len(upstream.requests) == 1  # only the plain question
    assert "4111" not in _cloud_saw(upstream) and EMAIL not in _cloud_saw(upstream)


def test_block_with_nowhere_trusted_fails_closed(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url, "block", deployments="[cloud]"))
    r = _ask(gw, SECRET_TEXT)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "blocked_by_policy"
    assert r.headers["x-turnout-outcome"] == "blocked"
    rec = gw.record(r.headers["x-turnout-request-id"])
    assert [e["state"] for e in rec["events"]] == ["received", "blocked"]
    assert upstream.requests == []


def test_redact_sends_placeholders_and_restores_originals(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url, "redact", deployments="[cloud]"))
    answer = "Noted: [EMAIL_1] and [PAYMENT_CARD_1] are yours."
    upstream.script(Step(content=answer), Step(content=answer))
    whole = _ask(gw, SECRET_TEXT)
    streamed = _ask(gw, SECRET_TEXT, stream=True)
    expected = f"Noted: {EMAIL} and {CARD} are yours."
    assert whole.json()["choices"][0]["message"]["content"] == expected
    text = "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in sse_events(streamed.text)[:-1]
        if e["choices"]
    )
    assert text == expected
    seen = _cloud_saw(upstream)
    assert "[EMAIL_1]" in seen and "[PAYMENT_CARD_1]" in seen
    assert EMAIL not in seen and "4111" not in seen
    rec = gw.record(whole.headers["x-turnout-request-id"])
    cloud = rec["events"][1]["attrs"]["candidates"][0]
    assert cloud["redacted"] is True


def test_a_conversation_that_carried_sensitive_data_stays_local(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url, "redact"))
    first = _ask(gw, SECRET_TEXT, conversation="conv-7")
    assert first.headers["x-turnout-deployment"] == "cloud"  # redacted, allowed
    later = _ask(gw, "And what is two plus two?", conversation="conv-7")
    assert later.headers["x-turnout-deployment"] == "edge"
    rec = gw.record(later.headers["x-turnout-request-id"])
    assert rec["events"][1]["attrs"]["sticky_local"] is True
    other = _ask(gw, "And what is two plus two?", conversation="conv-8")
    assert other.headers["x-turnout-deployment"] == "cloud"
    assert len(upstream.requests) == 2
