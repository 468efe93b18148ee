"""One bad request never hurts anyone else: each reproduction below, then a normal request.

Every case runs against a real gateway on loopback and a real scripted upstream, and asserts what
the client saw, what the record holds, and that the gateway still serves the next request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

Factory = Callable[[str], RunningGateway]
HI = [{"role": "user", "content": "hi"}]


def capped(url: str, **model: Any) -> str:
    extra = "".join(f", {k}: {v}" for k, v in model.items())
    return f"""
deployments:
  a: {{kind: openai, base_url: "{url}", model: m, max_concurrency: 1, max_queue: 8}}
models:
  assistant: {{deployments: [a]{extra}}}
"""


@pytest.fixture
def gw(upstream: ScriptedUpstream, gateway_factory: Factory) -> RunningGateway:
    return gateway_factory(capped(upstream.base_url))


def still_serves(gw: RunningGateway) -> None:
    r = gw.chat(model="assistant", messages=HI)
    assert r.status_code == 200, r.text
    assert r.headers["x-turnout-outcome"] == "completed"


def rejected(gw: RunningGateway, r: httpx.Response, param: str | None, code: str) -> dict:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["param"], err["code"]) == (param, code)
    rec = gw.record(r.headers["x-turnout-request-id"])
    assert rec["outcome"] == "rejected"
    return err


# -- a NaN deadline must not leave a dead waiter holding the deployment --------------------------


@pytest.mark.parametrize(
    ("headers", "metadata"),
    [({"x-turnout-deadline-ms": "nan"}, None), ({}, {"deadline_ms": "nan"})],
)
def test_nan_deadline_is_rejected_and_the_busy_deployment_keeps_serving(
    gw: RunningGateway, upstream: ScriptedUpstream, headers: dict, metadata: dict | None
) -> None:
    release = threading.Event()
    upstream.script(Step(hold=release))
    busy: list[httpx.Response] = []
    t = threading.Thread(target=lambda: busy.append(gw.chat(model="assistant")))
    t.start()
    upstream.wait_for_requests(1)
    body: dict[str, Any] = {"model": "assistant", "messages": HI}
    if metadata is not None:
        body["metadata"] = metadata
    r = gw.http.post("/v1/chat/completions", json=body, headers=headers)
    release.set()
    t.join()
    assert busy[0].status_code == 200
    err = rejected(gw, r, err_param(headers), "invalid_value")
    assert "nan" in err["message"]
    for _ in range(3):  # the slot came back: these would queue forever behind a dead waiter
        still_serves(gw)


def err_param(headers: dict) -> str:
    return "x-turnout-deadline-ms" if headers else "metadata.deadline_ms"


# -- bodies the record could not store, numbers that overflow -----------------------------------


def test_body_nested_300_levels_is_rejected_before_anything_runs(
    gw: RunningGateway, upstream: ScriptedUpstream
) -> None:
    raw = (
        '{"model": "assistant", "messages": [{"role": "user", "content": "hi"}], "x": '
        + '{"a": ' * 300
        + '"x"'
        + "}" * 300
        + "}"
    ).encode()
    r = gw.http.post("/v1/chat/completions", content=raw)
    err = rejected(gw, r, None, "too_deep")
    assert "64 levels" in err["message"]
    assert upstream.requests == []
    still_serves(gw)


def test_huge_max_tokens_is_rejected_with_its_range(gw: RunningGateway) -> None:
    r = gw.chat(model="assistant", messages=HI, max_tokens=2**64 - 1)
    err = rejected(gw, r, "max_tokens", "invalid_value")
    assert "2147483647" in err["message"]
    still_serves(gw)


# -- fields of the wrong type, anywhere --------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": {"x": 1}, "content": "hi"}], "messages[0].role"),
        ([{"role": ["user"], "content": "hi"}], "messages[0].role"),
        (
            [{"role": "user", "content": [{"type": "text", "text": 42}]}],
            "messages[0].content[0].text",
        ),
        (
            [{"role": "user", "content": [{"type": "video", "url": "x"}]}],
            "messages[0].content[0].type",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "content": "42"},
            ],
            "messages[2].tool_call_id",
        ),
    ],
)
def test_malformed_messages_are_400_naming_the_field(
    gw: RunningGateway, upstream: ScriptedUpstream, messages: list, param: str
) -> None:
    r = gw.chat(model="assistant", messages=messages)
    rejected(gw, r, param, "invalid_value")
    assert upstream.requests == []
    still_serves(gw)


def test_schema_nested_100_levels_is_rejected(gw: RunningGateway) -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(100):
        schema = {"type": "object", "properties": {"a": schema}}
    fmt = {"type": "json_schema", "json_schema": {"name": "deep", "schema": schema}}
    r = gw.chat(model="assistant", messages=HI, response_format=fmt)
    rejected(gw, r, None, "too_deep")
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    r = gw.chat(model="assistant", messages=HI, tools=[tool])
    rejected(gw, r, None, "too_deep")
    still_serves(gw)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {
                "tool_choice": "sometimes",
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            "tool_choice",
        ),
        (
            {
                "tool_choice": {"type": "function", "function": {"name": "g"}},
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            "tool_choice.function.name",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"logit_bias": {"abc": 1}}, "logit_bias"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"stop": ["a"] * 17}, "stop"),
        ({"service_tier": "fastest"}, "service_tier"),
        ({"presence_penalty": -2.5}, "presence_penalty"),
        ({"user": "u" * 300}, "user"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ],
)
def test_every_field_is_checked(gw: RunningGateway, extra: dict, param: str) -> None:
    r = gw.chat(model="assistant", messages=HI, **extra)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    assert gw.record(r.headers["x-turnout-request-id"])["outcome"] == "rejected"
    still_serves(gw)


@pytest.mark.parametrize(
    ("field", "raw", "code"),
    [
        ("temperature", b"Infinity", "invalid_json"),  # not JSON: the parser refuses it
        ("temperature", b"NaN", "invalid_json"),
        ("seed", b"1180591620717411303424", "invalid_value"),  # past 64 bits: read as a float
    ],
)
def test_numbers_json_cannot_carry_are_refused(
    gw: RunningGateway, field: str, raw: bytes, code: str
) -> None:
    body = b'{"model": "assistant", "messages": [{"role": "user", "content": "hi"}], "%s": %s}'
    r = gw.http.post("/v1/chat/completions", content=body % (field.encode(), raw))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code
    assert gw.record(r.headers["x-turnout-request-id"])["outcome"] == "rejected"
    still_serves(gw)


def test_unknown_and_billing_fields_are_held_back_and_recorded(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(
        f"""
deployments:
  a: {{kind: openai, base_url: "{upstream.base_url}", model: m}}
  b: {{kind: openai, base_url: "{upstream.base_url}", model: m, pass_fields: [top_k, store]}}
models:
  plain: {{deployments: [a]}}
  vllm: {{deployments: [b]}}
"""
    )
    extra = {"service_tier": "priority", "store": True, "top_k": 5, "seed": 7}
    r = gw.chat(model="plain", messages=HI, **extra)
    assert r.status_code == 200
    sent = upstream.requests[-1].body
    assert "service_tier" not in sent and "store" not in sent and "top_k" not in sent
    assert sent["seed"] == 7
    rec = gw.record(r.headers["x-turnout-request-id"])
    attempting = next(e for e in rec["events"] if e["state"] == "attempting")
    assert attempting["attrs"]["fields_not_forwarded"] == ["service_tier", "store", "top_k"]
    r = gw.chat(model="vllm", messages=HI, **extra)
    sent = upstream.requests[-1].body
    assert sent["top_k"] == 5 and sent["store"] is True and "service_tier" not in sent


# -- upstream answers that break the protocol are malformed, and retried -------------------------


@pytest.mark.parametrize(
    "step",
    [
        Step(
            raw=orjson.dumps(
                {
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "x"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": "lots"},
                }
            )
        ),
        Step(raw=orjson.dumps({"choices": {"0": {"message": {"content": "x"}}}})),
        Step(raw=orjson.dumps({"choices": [{"message": "just text"}]})),
    ],
    ids=["usage-not-a-number", "choices-an-object", "message-a-string"],
)
def test_malformed_upstream_answer_is_retried(
    gw: RunningGateway, upstream: ScriptedUpstream, step: Step
) -> None:
    upstream.script(step)
    r = gw.chat(model="assistant", messages=HI)
    assert r.status_code == 200, r.text
    rec = gw.record(r.headers["x-turnout-request-id"])
    assert [a.get("error") for a in rec["attempt_log"]] == ["malformed_response", None]
    assert rec["outcome"] == "completed"


def test_malformed_stream_event_before_the_first_token_is_retried(
    gw: RunningGateway, upstream: ScriptedUpstream
) -> None:
    upstream.script(Step(raw_events=[b'{"choices": {"delta": "x"}}', b"[DONE]"]))
    with gw.http.stream(
        "POST", "/v1/chat/completions", json={"model": "assistant", "messages": HI, "stream": True}
    ) as r:
        text = r.read().decode()
    assert r.status_code == 200 and text.rstrip().endswith("[DONE]")
    rec = gw.record(r.headers["x-turnout-request-id"])
    assert [a.get("error") for a in rec["attempt_log"]] == ["malformed_response", None]


# -- a client's pattern cannot stall the event loop ---------------------------------------------


def test_backtracking_pattern_is_invalid_output_and_others_are_served(
    gw: RunningGateway, upstream: ScriptedUpstream
) -> None:
    schema = {
        "type": "object",
        "properties": {"s": {"type": "string", "pattern": "^(a|aa)+$"}},
        "required": ["s"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "evil", "schema": schema}}
    upstream.script(Step(content=orjson.dumps({"s": "a" * 60 + "!"}).decode()))
    r = gw.chat(model="assistant", messages=HI, response_format=fmt)
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "check_timeout"
    rec = gw.record(r.headers["x-turnout-request-id"])
    assert rec["outcome"] == "invalid_output"
    assert [e["state"] for e in rec["events"]][-1] == "invalid_output"
    assert "pattern" in rec["events"][-1]["attrs"]["error"]
    assert len(rec["attempt_log"]) == 1  # not re-asked: the schema is at fault, not the answer
    assert gw.http.get("/healthz").status_code == 200
    still_serves(gw)


# -- upstream errors are scrubbed --------------------------------------------------------------


def test_upstream_error_echoing_the_key_never_reaches_client_record_or_events(
    upstream: ScriptedUpstream, gateway_factory: Factory, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    secret = "sk-proj-" + "Zq8" * 12
    monkeypatch.setenv("HOSTILE_KEY", secret)
    gw = gateway_factory(
        f"""
deployments:
  a: {{kind: openai, base_url: "{upstream.base_url}", model: m, api_key_env: HOSTILE_KEY}}
models:
  assistant: {{deployments: [a]}}
"""
    )
    message = (
        f"Incorrect API key provided: Bearer {secret}. Upstream 10.1.2.3:8000 said:\n"
        'Traceback (most recent call last):\n  File "/srv/app.py", line 3, in <module>'
    )
    upstream.script(Step(status=401, raw=orjson.dumps({"error": {"message": message}})))
    r = gw.chat(model="assistant", messages=HI)
    assert r.status_code == 502
    text = r.text
    assert secret not in text and "Zq8Zq8" not in text
    assert "10.1.2.3" not in text and "Traceback" not in text and "/srv/app.py" not in text
    assert "Incorrect API key provided" in text
    gw.record(r.headers["x-turnout-request-id"])
    db = gw.gateway.writer.path.read_bytes()
    wal = gw.gateway.writer.path.with_name(gw.gateway.writer.path.name + "-wal")
    stored = db + (wal.read_bytes() if wal.exists() else b"")
    assert b"Zq8Zq8" not in stored and b"10.1.2.3" not in stored
    assert b"Incorrect API key provided" in stored  # the message itself is recorded


# -- telemetry stays bounded -------------------------------------------------------------------


def test_unknown_model_names_do_not_become_metric_labels(gw: RunningGateway) -> None:
    for i in range(20):
        r = gw.chat(model=f"made-up-{i}", messages=HI)
        assert r.status_code == 404
    r = gw.chat(model="m" * 100_000, messages=HI)
    assert r.status_code == 400 and len(r.text) < 1000
    r = gw.chat(model="z" * 200, messages=HI)
    assert r.status_code == 404 and "z" * 41 not in r.text
    metrics = gw.http.get("/metrics").text
    assert "made-up" not in metrics
    assert 'turnout_requests_total{model="unknown",outcome="rejected"} 22.0' in metrics
    still_serves(gw)
