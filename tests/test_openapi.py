"""The OpenAPI document at /openapi.json: valid, complete, and true to what the gateway does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from gateway_harness import RunningGateway
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from upstream import ScriptedUpstream

SERVED = {
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/responses",
    "/v1/responses/{response_id}",
    "/v1/models",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/admin/v1/keys",
    "/admin/v1/keys/{id}",
    "/v1/feedback",
}


@pytest.fixture
def gateway(
    gateway_factory: Callable[[str], RunningGateway], upstream: ScriptedUpstream
) -> RunningGateway:
    return gateway_factory(
        f"""
        deployments:
          a: {{kind: openai, base_url: "{upstream.base_url}", model: m}}
        models:
          assistant: {{deployments: [a]}}
        """
    )


def _validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    """A JSON Schema validator for one component, its $refs resolved inside the document."""
    uri = "urn:turnout:openapi"
    resource = DRAFT202012.create_resource(document)
    registry: Registry[Any] = Registry().with_resource(uri, resource)
    return Draft202012Validator({"$ref": f"{uri}#/components/schemas/{name}"}, registry=registry)


def test_the_served_document_is_valid_openapi_covering_every_route(gateway: RunningGateway) -> None:
    r = gateway.http.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    document = r.json()
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == SERVED


def test_requests_the_gateway_takes_match_the_document_and_bad_ones_do_not(
    gateway: RunningGateway,
) -> None:
    document = gateway.http.get("/openapi.json").json()
    request = _validator(document, "ChatCompletionRequest")
    full = {
        "model": "assistant",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
        ],
        "temperature": 0.2,
        "top_p": 1,
        "max_tokens": 16,
        "stop": ["\n"],
        "seed": 7,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "tool_choice": "auto",
        "metadata": {"conversation_id": "c-1"},
        "stream_options": None,
    }
    assert not list(request.iter_errors(full))
    r = gateway.post("/v1/chat/completions", full)
    assert r.status_code == 200
    assert not list(_validator(document, "ChatCompletion").iter_errors(r.json()))

    for field, value in [
        ("temperature", 3),
        ("top_p", -0.1),
        ("n", 2),
        ("max_tokens", 0),
        ("presence_penalty", 2.5),
        ("messages", []),
        ("tool_choice", "sometimes"),
        ("response_format", {"type": "yaml"}),
    ]:
        errors = list(request.iter_errors({**full, field: value}))
        assert errors, f"{field}={value!r} should not match the document"
        r = gateway.post("/v1/chat/completions", {**full, field: value})
        if field in ("temperature", "top_p", "n", "max_tokens", "messages"):
            assert r.status_code == 400 and r.json()["error"]["param"] == field

    bad_role = {**full, "messages": [{"role": "robot", "content": "hi"}]}
    assert list(request.iter_errors(bad_role))
    silent = {**full, "messages": [{"role": "assistant"}, {"role": "user", "content": "hi"}]}
    assert list(request.iter_errors(silent)), "an assistant message needs content or tool_calls"
    r = gateway.post("/v1/chat/completions", silent)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].content"
    completion = _validator(document, "CompletionRequest")
    assert not list(completion.iter_errors({"model": "assistant", "prompt": "Once"}))
    assert list(completion.iter_errors({"model": "assistant", "prompt": ["a", "b"]}))


def test_errors_match_the_documented_shape(gateway: RunningGateway) -> None:
    document = gateway.http.get("/openapi.json").json()
    error = _validator(document, "Error")
    r = gateway.post("/v1/chat/completions", {"model": "nope", "messages": []})
    assert r.status_code == 400
    assert not list(error.iter_errors(r.json()))
    anthropic = _validator(document, "AnthropicError")
    r = gateway.post("/v1/messages", {"model": "assistant", "messages": []})
    assert r.status_code == 400
    assert not list(anthropic.iter_errors(r.json()))
    models = gateway.http.get("/v1/models").json()
    assert not list(_validator(document, "ModelList").iter_errors(models))


def test_responses_requests_and_answers_match_the_document(gateway: RunningGateway) -> None:
    document = gateway.http.get("/openapi.json").json()
    request = _validator(document, "ResponsesRequest")
    body = {
        "model": "assistant",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
        ],
        "instructions": "Be brief.",
        "max_output_tokens": 16,
        "tools": [{"type": "function", "name": "f", "parameters": {}}],
        "text": {"format": {"type": "text"}},
    }
    assert not list(request.iter_errors(body))
    r = gateway.post("/v1/responses", body)
    assert r.status_code == 200
    assert not list(_validator(document, "Response").iter_errors(r.json()))
    got = gateway.http.get(f"/v1/responses/{r.json()['id']}")
    assert not list(_validator(document, "Response").iter_errors(got.json()))
    for field, value in [("max_output_tokens", 0), ("temperature", 3), ("frobnicate", 1)]:
        assert list(request.iter_errors({**body, field: value}))
        bad = gateway.post("/v1/responses", {**body, field: value})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == field
