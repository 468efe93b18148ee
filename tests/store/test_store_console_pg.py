"""The operator console on a gateway that records into PostgreSQL, over plain HTTP: the
requests page and its filters, a trace, and a key's spend and refusals read the record there."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from gateway_harness import RunningGateway
from pg_server import PASSWORD, PostgresServer
from upstream import ScriptedUpstream

Factory = Callable[[str], RunningGateway]
ADMIN = "console-pg-admin-secret-0123456789"


def test_the_console_browses_a_record_kept_in_postgres(
    gateway_factory: Factory,
    upstream: ScriptedUpstream,
    pg_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONSOLE_PG_ADMIN_KEY", ADMIN)
    url = pg_server.create_database()
    gw = gateway_factory(
        f"""
deployments:
  up: {{kind: openai, base_url: "{upstream.base_url}", model: m,
        price: {{input_per_mtok: 1000.0, output_per_mtok: 1000.0}}}}
models:
  chat: {{deployments: [up]}}
store: {{url: "{url}", flush_interval_s: 0.05}}
auth: {{mode: keys, admin_key_env: CONSOLE_PG_ADMIN_KEY, spend_flush_s: 0.05}}
"""
    )
    admin = {"authorization": f"Bearer {ADMIN}"}
    spec = {"name": "capped", "rpm": 1, "budget_usd": 0.02, "budget_period": "1d"}
    key = gw.http.post("/admin/v1/keys", json=spec, headers=admin).json()
    sent = [
        gw.http.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "spend"}]},
            headers={"authorization": f"Bearer {key['key']}"},
        )
        for _ in range(2)  # the second is over the key's rpm
    ]
    assert [r.status_code for r in sent] == [200, 429]
    served, refused = (r.headers["x-turnout-request-id"] for r in sent)
    for rid in (served, refused):
        gw.record(rid)

    listing = gw.http.get("/ui/requests", headers=admin)
    assert listing.status_code == 200
    assert f"/ui/requests/{served}" in listing.text and f"/ui/requests/{refused}" in listing.text
    assert listing.text.index(refused) < listing.text.index(served)  # newest first
    only = gw.http.get(f"/ui/requests?key_id={key['id']}&outcome=rejected", headers=admin)
    assert only.status_code == 200
    assert refused in only.text and served not in only.text
    none = gw.http.get("/ui/requests?model=chat&outcome=truncated", headers=admin)
    assert none.status_code == 200 and served not in none.text and refused not in none.text

    trace = gw.http.get(f"/ui/requests/{served}", headers=admin)
    assert trace.status_code == 200
    assert served in trace.text and "completed" in trace.text and "spend" in trace.text
    assert gw.http.get(f"/ui/requests/{served[:12]}", headers=admin).status_code == 200
    assert gw.http.get("/ui/requests/no-such-id", headers=admin).status_code == 404

    keys = gw.http.get("/ui/keys?over=24h", headers=admin)
    assert keys.status_code == 200
    usage = re.search(rf'id="usage-{key["id"]}".*?(?=id="usage-|\Z)', keys.text, re.S)
    assert usage is not None, keys.text
    assert usage.group().count('class="spent"') == 1  # one bucket of spend
    code = sent[1].json()["error"]["code"]
    assert re.search(rf"<td>{code}</td>\s*<td>1</td>", usage.group()), usage.group()
    for page in (listing, only, trace, keys):
        assert PASSWORD not in page.text
