"""Bad input gets a clear OpenAI-shaped 4xx, is recorded as `rejected`, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream

Factory = Callable[[str], RunningGateway]


@pytest.fixture
def gw(upstream: ScriptedUpstream, gateway_factory: Factory) -> RunningGateway:
    return gateway_factory(
        f"""
server: {{max_body_bytes: 2000}}
deployments:
  a: {{kind: openai, base_url: "{upstream.base_url}", model: m}}
models:
  assistant: {{deployments: [a]}}
"""
    )


CASES = [
    (b'{"model": "assistant", "messages": [', 400, "invalid_json", None, "not valid JSON"),
    (b"[1, 2]", 400, "invalid_json", None, "JSON object"),
    (b"", 400, "invalid_json", None, "empty"),
    (b'{"model": "assistant", "messages": "hi"}', 400, "invalid_value", "messages", "list"),
    (
        b'{"messages": [{"role": "user", "content": "x"}]}',
        400,
        "invalid_value",
        "model",
        "required",
    ),
    (
        b'{"model": "assistant", "messages": [{"role": "wizard", "content": "x"}]}',
        400,
        "invalid_value",
        "messages[0].role",
        "role",
    ),
    (
        b'{"model": "assistant", "messages": [{"role": "user"}]}',
        400,
        "invalid_value",
        "messages[0].content",
        "required",
    ),
    (
        b'{"model": "assistant", "messages": [{"role": "user", "content": "x"}], '
        b'"max_tokens": "9"}',
        400,
        "invalid_value",
        "max_tokens",
        "integer from 1",
    ),
    (
        b'{"model": "assistant", "messages": [{"role": "user", "content": "x"}], "temperature": 7}',
        400,
        "invalid_value",
        "temperature",
        "between",
    ),
    (
        b'{"model": "assistant", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
        400,
        "invalid_value",
        "stream",
        "bool",
    ),
    (
        b'{"model": "assistant", "messages": [{"role": "user", "content": "x"}], '
        b'"response_format": {"type": "json_schema", "json_schema": {"name": "n", '
        b'"schema": {"type": "objekt"}}}}',
        400,
        "invalid_value",
        "response_format.json_schema.schema",
        "JSON Schema",
    ),
    (
        b'{"model": "assistant", "messages": [{"role": "user", "content": "x"}], '
        b'"tools": [{"type": "function", "function": {}}]}',
        400,
        "invalid_value",
        "tools[0].function.name",
        "required",
    ),
    (
        b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}',
        404,
        "model_not_found",
        "model",
        "does not exist",
    ),
    (
        b'{"model": "assistant", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        400,
        "invalid_encoding",
        None,
        "UTF-8",
    ),
    (
        b'{"model": "assistant", "messages": [{"role": "user", "content": "'
        + b"x" * 3000
        + b'"}]}',
        413,
        "body_too_large",
        None,
        "exceeds 2000 bytes",
    ),
]


@pytest.mark.parametrize(("raw", "status", "code", "param", "words"), CASES)
def test_bad_request_is_rejected_clearly_and_recorded(
    gw: RunningGateway,
    upstream: ScriptedUpstream,
    raw: bytes,
    status: int,
    code: str,
    param: str | None,
    words: str,
) -> None:
    r = gw.http.post(
        "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == code
    assert err["param"] == param
    assert words in err["message"]
    assert r.headers["x-turnout-outcome"] == "rejected"
    rec = gw.record(r.headers["x-turnout-request-id"])
    assert rec["outcome"] == "rejected"
    assert [e["state"] for e in rec["events"]] == ["received", "rejected"]
    assert rec["http_status"] == status
    assert upstream.requests == []  # nothing reached an upstream


def test_bad_text_completion_prompt(gw: RunningGateway) -> None:
    r = gw.http.post("/v1/completions", json={"model": "assistant", "prompt": 42})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "prompt"


def test_unknown_route_and_wrong_method(gw: RunningGateway) -> None:
    r = gw.http.get("/v1/nothing")
    assert r.status_code == 404 and "error" in r.json()
    r = gw.http.get("/v1/chat/completions")
    assert r.status_code == 405 and "POST" in r.json()["error"]["message"]


def test_gateway_keeps_serving_after_bad_input(gw: RunningGateway) -> None:
    for _ in range(3):
        gw.http.post("/v1/chat/completions", content=b"{oops")
    assert gw.chat(model="assistant").status_code == 200
