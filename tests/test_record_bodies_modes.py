"""`record_bodies`: `none` keeps no client or model text anywhere in the record, errors included;
`redacted` keeps the structure of the wire format and nothing a client or model wrote."""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

from turnout.store.bodies import redact, scrub_attrs

Factory = Callable[[str], RunningGateway]

SECRET_OUTPUT = "SSN 123-45-6789"  # what the model answers where an integer belongs
CLIENT_TEXTS = ("please-keep-this-private", "STOPWORD-XYZ", "alice-the-user", "customer_ref_key")
SCHEMA = {
    "type": "object",
    "properties": {"population": {"type": "integer"}},
    "required": ["population"],
}


def gateway(upstream: ScriptedUpstream, factory: Factory, mode: str, tmp: str) -> RunningGateway:
    return factory(
        textwrap.dedent(
            f"""
            store: {{url: "sqlite:///{tmp}/{mode}.db", flush_interval_s: 0.05,
                     record_bodies: {mode}}}
            deployments:
              a: {{kind: openai, base_url: "{upstream.base_url}", model: m}}
            models:
              assistant: {{deployments: [a], lifecycle: {{max_attempts: 1}}}}
            """
        )
    )


def ask(gw: RunningGateway) -> str:
    r = gw.post(
        "/v1/chat/completions",
        {
            "model": "assistant",
            "messages": [
                {"role": "user", "name": "alice-the-user", "content": "please-keep-this-private"}
            ],
            "stop": ["STOPWORD-XYZ"],
            "metadata": {"customer_ref_key": "v"},
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": SCHEMA},
            },
        },
    )
    # The model's answer breaks the schema; the validation error quotes it.
    assert r.status_code == 502, r.text
    assert r.json()["error"]["type"] == "invalid_output"
    assert "123-45-6789" in r.json()["error"]["message"]
    return str(r.headers["x-turnout-request-id"])


def stored_row(gw: RunningGateway, rid: str) -> str:
    """Every column of the record's row, as one text: what a reader of the store could see."""
    gw.gateway.writer.flush()
    db = sqlite3.connect(str(gw.gateway.writer.path))
    row = db.execute("SELECT * FROM requests WHERE id = ?", (rid,)).fetchone()
    assert row is not None
    return " ".join("" if v is None else str(v) for v in row)


@pytest.fixture
def secret_answer(upstream: ScriptedUpstream) -> ScriptedUpstream:
    upstream.default = Step(content=orjson.dumps({"population": SECRET_OUTPUT}).decode())
    return upstream


def test_full_keeps_everything_so_the_other_modes_are_tested_against_real_text(
    secret_answer: ScriptedUpstream, gateway_factory: Factory, tmp_path: Any
) -> None:
    gw = gateway(secret_answer, gateway_factory, "full", tmp_path)
    row = stored_row(gw, ask(gw))
    assert "123-45-6789" in row
    assert all(text in row for text in CLIENT_TEXTS)


def test_none_leaves_no_client_or_model_text_in_any_column(
    secret_answer: ScriptedUpstream, gateway_factory: Factory, tmp_path: Any
) -> None:
    gw = gateway(secret_answer, gateway_factory, "none", tmp_path)
    rid = ask(gw)
    row = stored_row(gw, rid)
    assert "123-45-6789" not in row
    assert not [text for text in CLIENT_TEXTS if text in row]
    rec = gw.record(rid)
    assert (rec["request_body"], rec["response_body"]) == (None, None)
    assert rec["outcome"] == "invalid_output"
    assert rec["error"].startswith("[redacted: ")
    last = rec["events"][-1]
    assert last["state"] == "invalid_output"
    assert last["attrs"]["kind"] == "schema_violation"  # turnout's own words stay
    assert gw.chat(model="assistant").status_code in (200, 502)  # still serving


def test_redacted_keeps_the_wire_structure_and_no_text(
    secret_answer: ScriptedUpstream, gateway_factory: Factory, tmp_path: Any
) -> None:
    gw = gateway(secret_answer, gateway_factory, "redacted", tmp_path)
    rid = ask(gw)
    row = stored_row(gw, rid)
    assert "123-45-6789" not in row
    assert not [text for text in CLIENT_TEXTS if text in row]
    body = gw.record(rid)["request_body"]
    message = body["messages"][0]
    assert message == {
        "role": "user",
        "name": "[redacted: 14 chars]",
        "content": "[redacted: 24 chars]",
    }
    assert body["stop"] == ["[redacted: 12 chars]"]
    assert body["metadata"] == {"[key 1]": "[redacted: 1 chars]"}
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["type"] == "object"
    assert list(schema["properties"]) == ["[key 1]"]  # a property name is the client's text
    assert schema["properties"]["[key 1]"] == {"type": "integer"}


def test_redact_keeps_protocol_identifiers_only_when_they_look_like_one() -> None:
    assert redact({"role": "assistant", "finish_reason": "stop", "id": "call_1"}) == {
        "role": "assistant",
        "finish_reason": "stop",
        "id": "call_1",
    }
    assert redact({"role": "my secret role", "type": "x" * 65}) == {
        "role": "[redacted: 14 chars]",
        "type": "[redacted: 65 chars]",
    }


def test_event_attributes_keep_turnouts_words_and_lose_quoted_text() -> None:
    attrs = {
        "deployment": "a",
        "failure": "server_error",
        "reason": "attempts exhausted",
        "error": "'123-45-6789' is not of type 'integer'",
        "tenant": "a tenant a client made up",
        "quoted": "anything else",
    }
    assert scrub_attrs(attrs, "none") == {
        "deployment": "a",
        "failure": "server_error",
        "reason": "attempts exhausted",
        "error": "[redacted: 38 chars]",
        "tenant": "[redacted: 25 chars]",
        "quoted": "[redacted: 13 chars]",
    }
    assert scrub_attrs({"reason": "model said 'x'"}, "redacted") == {
        "reason": "[redacted: 14 chars]"
    }
