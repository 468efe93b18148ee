"""Client keys on a real gateway: who may ask, for which model, how often, for how much."""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anthropic
import openai
import orjson
import pytest
from gateway_harness import RunningGateway, spans_of
from keys_helpers import PRICE, create_key, gateway_yaml, keys_cli
from upstream import ScriptedUpstream

from turnout.cli import main
from turnout.store.keys import open_keys
from turnout.store.query import list_requests

Factory = Callable[[str], RunningGateway]
HI = [{"role": "user", "content": "hi"}]


def client(gw: RunningGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def records(gw: RunningGateway, **kw: str) -> list[dict]:
    gw.gateway.writer.flush()
    return list_requests(gw.gateway.config.store.url, limit=100, **kw)


def test_a_key_authorises_the_openai_sdk_and_every_record_names_it(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "app", "--tenant", "team-a")
    gw = gateway_factory(gateway_yaml(upstream, store))
    answer = client(gw, key["key"]).chat.completions.create(model="chat", messages=HI)
    assert answer.choices[0].message.content == "Hello from upstream."
    [row] = records(gw, key_id=key["id"])
    assert (row["outcome"], row["key_id"], row["tenant"]) == ("completed", key["id"], "team-a")
    assert key["key"] not in str(upstream.requests[0].headers)  # never forwarded upstream


def test_the_x_api_key_header_authorises_too(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "anthropic-style")
    gw = gateway_factory(gateway_yaml(upstream, store))
    r = gw.http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": HI},
        headers={"x-api-key": key["key"]},
    )
    assert r.status_code == 200, r.text


def test_the_anthropic_sdk_authenticates_with_a_key(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "claude-app")
    gw = gateway_factory(gateway_yaml(upstream, store))
    sdk = anthropic.Anthropic(base_url=gw.url, api_key=key["key"], max_retries=0)
    answer = sdk.messages.create(model="chat", max_tokens=32, messages=HI)
    assert answer.content[0].text == "Hello from upstream."
    [row] = records(gw, key_id=key["id"])
    assert (row["outcome"], row["wire"]) == ("completed", "messages")
    wrong = anthropic.Anthropic(base_url=gw.url, api_key="tk-not-a-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.create(model="chat", max_tokens=32, messages=HI)


def test_messages_answers_carry_anthropics_rate_limit_headers(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "claude-app", "--rpm", "2", "--tpm", "5000")
    gw = gateway_factory(gateway_yaml(upstream, store))
    sdk = anthropic.Anthropic(base_url=gw.url, api_key=key["key"], max_retries=0)
    before = datetime.now(UTC).replace(microsecond=0)
    ok = sdk.messages.with_raw_response.create(model="chat", max_tokens=32, messages=HI)
    assert ok.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert ok.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert ok.headers["anthropic-ratelimit-tokens-limit"] == "5000"
    reset = datetime.fromisoformat(ok.headers["anthropic-ratelimit-requests-reset"])
    assert before < reset <= datetime.now(UTC) + timedelta(seconds=61)
    assert not [h for h in ok.headers if h.startswith("x-ratelimit-")]
    sdk.messages.create(model="chat", max_tokens=32, messages=HI)
    with pytest.raises(anthropic.RateLimitError) as over:
        sdk.messages.create(model="chat", max_tokens=32, messages=HI)
    refused = over.value.response.headers
    assert refused["anthropic-ratelimit-requests-remaining"] == "0"
    assert 1 <= int(refused["retry-after"]) <= 60
    assert over.value.body["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer tk-not-a-key"}, {"x-api-key": "sk-something-else"}],
    ids=["missing", "unknown", "foreign"],
)
def test_a_request_without_a_valid_key_is_401_and_recorded_without_its_body(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path, headers: dict
) -> None:
    store = tmp_path / "t.db"
    create_key(store, "--name", "someone")
    gw = gateway_factory(gateway_yaml(upstream, store))
    r = gw.http.post(
        "/v1/chat/completions", json={"model": "secret-model", "messages": HI}, headers=headers
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert "secret-model" not in r.text and "chat" not in r.text  # served models stay unnamed
    rec = gw.record(r.headers["x-turnout-request-id"])
    assert rec["outcome"] == "rejected" and rec["http_status"] == 401
    assert rec["events"][-1]["attrs"]["code"] == "invalid_api_key"
    assert rec["request_body"] is None and rec["key_id"] is None
    assert upstream.requests == []


def test_a_401_wins_over_a_malformed_body(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    gw = gateway_factory(gateway_yaml(upstream, tmp_path / "t.db"))
    r = gw.http.post("/v1/chat/completions", content=b"{not json")
    assert r.status_code == 401


def test_an_expired_key_is_401(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "brief", "--expires", "1s")
    gw = gateway_factory(gateway_yaml(upstream, store))
    deadline = time.time() + 10
    while time.time() < key["expires"] and time.time() < deadline:
        time.sleep(0.05)
    with pytest.raises(openai.AuthenticationError) as err:
        client(gw, key["key"]).chat.completions.create(model="chat", messages=HI)
    assert "expired" in str(err.value)


def test_a_model_outside_the_keys_list_is_403_model_not_allowed(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "narrow", "--models", "chat")
    gw = gateway_factory(gateway_yaml(upstream, store))
    with pytest.raises(openai.PermissionDeniedError) as err:
        client(gw, key["key"]).chat.completions.create(model="other", messages=HI)
    assert err.value.code == "model_not_allowed"
    [row] = records(gw, key_id=key["id"])
    assert (row["outcome"], row["http_status"]) == ("rejected", 403)
    listed = client(gw, key["key"]).models.list()
    assert [m.id for m in listed.data] == ["chat"]


def test_over_rpm_is_429_with_retry_after_and_openais_rate_limit_headers(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "slow", "--rpm", "3")
    gw = gateway_factory(gateway_yaml(upstream, store))
    auth = {"authorization": f"Bearer {key['key']}"}
    body = {"model": "chat", "messages": HI}
    ok = [gw.http.post("/v1/chat/completions", json=body, headers=auth) for _ in range(3)]
    assert [r.status_code for r in ok] == [200, 200, 200]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in ok] == ["2", "1", "0"]
    over = gw.http.post("/v1/chat/completions", json=body, headers=auth)
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert over.headers["x-ratelimit-limit-requests"] == "3"
    assert over.headers["x-ratelimit-remaining-requests"] == "0"
    assert over.headers["x-ratelimit-reset-requests"].endswith("s")
    rec = gw.record(over.headers["x-turnout-request-id"])
    assert rec["outcome"] == "rejected" and rec["key_id"] == key["id"]
    assert rec["events"][-1]["attrs"]["code"] == "rate_limit_exceeded"
    assert len(upstream.requests) == 3


def test_over_tpm_is_429_and_tokens_settle_on_the_real_count(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "tokens", "--tpm", "100")
    gw = gateway_factory(gateway_yaml(upstream, store))
    auth = {"authorization": f"Bearer {key['key']}"}
    # Predicted at admission: the prompt and max_tokens (90); the real count is far lower.
    first = gw.http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": HI, "max_tokens": 90},
        headers=auth,
    )
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "100"
    # Settled on the real tokens, the window has room again for another such request.
    second = gw.http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": HI, "max_tokens": 60},
        headers=auth,
    )
    assert second.status_code == 200, second.text
    over = gw.http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": HI, "max_tokens": 95},
        headers=auth,
    )
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "rate_limit_exceeded"
    assert over.json()["error"]["type"] == "tokens"


def test_the_budget_crossing_request_completes_and_the_next_is_insufficient_quota(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "capped", "--budget-usd", "0.001", "--budget-period", "1d")
    gw = gateway_factory(gateway_yaml(upstream, store, price=PRICE))
    sdk = client(gw, key["key"])
    crossing = sdk.chat.completions.with_raw_response.create(model="chat", messages=HI)
    assert crossing.status_code == 200
    spent = float(crossing.headers["x-turnout-cost-usd"])
    assert spent > 0.001  # one request crosses the whole budget
    with pytest.raises(openai.RateLimitError) as err:
        sdk.chat.completions.create(model="chat", messages=HI)
    assert err.value.code == "insufficient_quota"
    assert err.value.response.headers["x-should-retry"] == "false"
    rows = records(gw, key_id=key["id"])
    assert [r["outcome"] for r in rows] == ["rejected", "completed"]
    assert len(upstream.requests) == 1


def test_spend_is_durable_a_restarted_gateway_still_refuses_a_spent_key(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "capped", "--budget-usd", "0.001")
    yaml = gateway_yaml(upstream, store, price=PRICE)
    first = gateway_factory(yaml)
    r = first.http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": HI},
        headers={"authorization": f"Bearer {key['key']}"},
    )
    assert r.status_code == 200
    first.stop()
    keys = open_keys(f"sqlite:///{store}")
    assert keys.spend(key["id"], 0.0).usd == pytest.approx(float(r.headers["x-turnout-cost-usd"]))
    keys.close()
    second = gateway_factory(yaml)
    r = second.http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": HI},
        headers={"authorization": f"Bearer {key['key']}"},
    )
    assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"


def test_a_streamed_request_is_charged_too(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "streamer", "--budget-usd", "0.001")
    gw = gateway_factory(gateway_yaml(upstream, store, price=PRICE))
    sdk = client(gw, key["key"])
    chunks = list(sdk.chat.completions.create(model="chat", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    with pytest.raises(openai.RateLimitError) as err:
        sdk.chat.completions.create(model="chat", messages=HI, stream=True)
    assert err.value.code == "insufficient_quota"


def test_the_keys_tenant_and_priority_replace_what_headers_claim(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "t", "--tenant", "team-a", "--priority", "low")
    yaml = (
        gateway_yaml(upstream, store) + "tenants:\n  team-b: {priority: high, header_claim: true}\n"
    )
    gw = gateway_factory(yaml)
    r = gw.http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": HI},
        headers={
            "authorization": f"Bearer {key['key']}",
            "x-turnout-tenant": "team-b",
            "x-turnout-priority": "high",
        },
    )
    assert r.status_code == 200
    rec = gw.record(r.headers["x-turnout-request-id"])
    routed = next(e for e in rec["events"] if e["state"] == "routed")["attrs"]
    assert routed["tenant"] == "team-a"
    assert routed["tenant_claim_ignored"] == "team-b"
    assert rec["tenant"] == "team-a"


def test_revocation_takes_effect_on_a_running_gateway_within_a_second(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "doomed")
    gw = gateway_factory(gateway_yaml(upstream, store))
    sdk = client(gw, key["key"])
    sdk.chat.completions.create(model="chat", messages=HI)
    assert keys_cli(store, "revoke", key["id"])[0] == 0
    deadline = time.monotonic() + 1.0
    status = 200
    while status == 200 and time.monotonic() < deadline:
        r = gw.http.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": HI},
            headers={"authorization": f"Bearer {key['key']}"},
        )
        status = r.status_code
    assert status == 401 and "revoked" in r.text


def test_a_key_created_while_the_gateway_runs_is_usable(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    gw = gateway_factory(gateway_yaml(upstream, store))
    key = create_key(store, "--name", "late")
    deadline = time.monotonic() + 1.0
    status = 401
    while status == 401 and time.monotonic() < deadline:
        status = gw.http.get(
            "/v1/models", headers={"authorization": f"Bearer {key['key']}"}
        ).status_code
    assert status == 200


def test_without_keys_on_loopback_nothing_changes(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    gw = gateway_factory(gateway_yaml(upstream, tmp_path / "t.db", auth="{}"))
    assert gw.chat(model="chat").status_code == 200
    assert gw.http.get("/metrics").status_code == 200


def test_requests_lists_one_keys_requests(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    a = create_key(store, "--name", "a")
    b = create_key(store, "--name", "b")
    gw = gateway_factory(gateway_yaml(upstream, store))
    for key, n in ((a, 2), (b, 1)):
        for _ in range(n):
            client(gw, key["key"]).chat.completions.create(model="chat", messages=HI)
    gw.gateway.writer.flush()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["requests", "--store", f"sqlite:///{store}", "--key", a["id"], "--json"])
    rows = orjson.loads(out.getvalue())
    assert len(rows) == 2 and {r["key_id"] for r in rows} == {a["id"]}


def test_spans_name_the_key_by_id_and_never_carry_its_secret(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "traced", "--tenant", "team-a")
    gw = gateway_factory(gateway_yaml(upstream, store))
    raw = client(gw, key["key"]).chat.completions.with_raw_response.create(
        model="chat", messages=HI
    )
    spans = spans_of(raw.headers["x-turnout-request-id"])
    attrs = spans[0].attributes or {}
    assert (attrs["turnout.key.id"], attrs["turnout.tenant"]) == (key["id"], "team-a")
    everything = str([(s.attributes, [e.attributes for e in s.events]) for s in spans])
    assert key["key"] not in everything and key["key"][3:] not in everything


def test_without_shared_state_the_gateway_says_it_enforces_limits_alone(
    gateway_factory: Factory,
    upstream: ScriptedUpstream,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="turnout.auth")
    gateway_factory(gateway_yaml(upstream, tmp_path / "t.db"))
    assert "each gateway enforces key limits alone (no state.url)" in caplog.text
