"""The admin API and /metrics answer only to the admin key; the key's secret goes nowhere."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from gateway_harness import RunningGateway
from keys_helpers import PRICE, create_key, gateway_yaml, keys_cli
from upstream import ScriptedUpstream

Factory = Callable[[str], RunningGateway]
ADMIN = "admin-secret-for-tests"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def admin_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TURNOUT_ADMIN_KEY", ADMIN)
    return ADMIN


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"}], ids=["none", "wrong"])
def test_the_admin_api_and_metrics_refuse_without_the_admin_key(
    gateway_factory: Factory,
    upstream: ScriptedUpstream,
    tmp_path: Path,
    admin_env: str,
    headers: dict[str, str],
) -> None:
    gw = gateway_factory(gateway_yaml(upstream, tmp_path / "t.db"))
    for method, path in (
        ("GET", "/admin/v1/keys"),
        ("POST", "/admin/v1/keys"),
        ("GET", "/admin/v1/keys/key_x"),
        ("DELETE", "/admin/v1/keys/key_x"),
        ("GET", "/metrics"),
    ):
        r = gw.http.request(method, path, headers=headers, json={"name": "x"})
        assert r.status_code == 401, (method, path)
        assert r.json()["error"]["code"] == "invalid_api_key"
    assert gw.http.get("/metrics", headers=bearer(ADMIN)).status_code == 200


def test_without_an_admin_key_configured_the_admin_api_is_closed(
    gateway_factory: Factory,
    upstream: ScriptedUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TURNOUT_ADMIN_KEY", raising=False)
    gw = gateway_factory(gateway_yaml(upstream, tmp_path / "t.db"))
    r = gw.http.get("/admin/v1/keys", headers=bearer("anything"))
    assert r.status_code == 403
    assert "TURNOUT_ADMIN_KEY" in r.json()["error"]["message"]


def test_metrics_stay_open_when_protect_leaves_them_out(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path, admin_env: str
) -> None:
    auth = "{mode: keys, protect: [admin]}"
    gw = gateway_factory(gateway_yaml(upstream, tmp_path / "t.db", auth=auth))
    assert gw.http.get("/metrics").status_code == 200


def test_keys_are_created_listed_shown_and_revoked_over_http(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path, admin_env: str
) -> None:
    gw = gateway_factory(gateway_yaml(upstream, tmp_path / "t.db"))
    admin = bearer(ADMIN)
    made = gw.http.post(
        "/admin/v1/keys",
        headers=admin,
        json={
            "name": "svc",
            "models": ["chat"],
            "rpm": 10,
            "budget_usd": 5,
            "budget_period": "30d",
        },
    )
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["key"].startswith("tk-") and key["display"] == f"tk-…{key['key'][-4:]}"
    assert gw.chat(model="chat").status_code == 401  # no key
    ok = gw.http.post(
        "/v1/chat/completions", json={"model": "chat", "messages": HI}, headers=bearer(key["key"])
    )
    assert ok.status_code == 200  # usable at once on the gateway that made it
    listed = gw.http.get("/admin/v1/keys", headers=admin).json()["data"]
    assert [k["id"] for k in listed] == [key["id"]]
    assert key["key"] not in str(listed) and "secret_sha256" not in listed[0]
    shown = gw.http.get(f"/admin/v1/keys/{key['id']}", headers=admin).json()
    assert shown["rpm"] == 10 and shown["budget_period_s"] == 30 * 86400
    assert shown["status"] == "active"
    gone = gw.http.delete(f"/admin/v1/keys/{key['id']}", headers=admin)
    assert gone.status_code == 200 and gone.json()["status"] == "revoked"
    refused = gw.http.post(
        "/v1/chat/completions", json={"model": "chat", "messages": HI}, headers=bearer(key["key"])
    )
    assert refused.status_code == 401


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "name"),
        ({"name": "x", "rpm": 0}, "rpm"),
        ({"name": "x", "budget_period": "1d"}, "budget_period"),
        ({"name": "x", "priority": "urgent"}, "priority"),
        ({"name": "x", "expires": "soon"}, "expires"),
        ({"name": "x", "colour": "red"}, "colour"),
    ],
)
def test_a_bad_key_spec_is_a_400_naming_the_setting(
    gateway_factory: Factory,
    upstream: ScriptedUpstream,
    tmp_path: Path,
    admin_env: str,
    body: dict,
    words: str,
) -> None:
    gw = gateway_factory(gateway_yaml(upstream, tmp_path / "t.db"))
    r = gw.http.post("/admin/v1/keys", headers=bearer(ADMIN), json=body)
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(words)


def test_an_unknown_key_id_is_404(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path, admin_env: str
) -> None:
    gw = gateway_factory(gateway_yaml(upstream, tmp_path / "t.db"))
    assert gw.http.get("/admin/v1/keys/key_nope", headers=bearer(ADMIN)).status_code == 404
    assert gw.http.delete("/admin/v1/keys/key_nope", headers=bearer(ADMIN)).status_code == 404


def test_metrics_count_requests_and_spend_by_created_key_only(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path, admin_env: str
) -> None:
    store = tmp_path / "t.db"
    key = create_key(store, "--name", "m")
    gw = gateway_factory(gateway_yaml(upstream, store, price=PRICE))
    body = {"model": "chat", "messages": HI}
    assert gw.http.post("/v1/chat/completions", json=body, headers=bearer(key["key"])).is_success
    gw.http.post("/v1/chat/completions", json=body, headers=bearer("tk-made-up"))
    text = gw.http.get("/metrics", headers=bearer(ADMIN)).text
    assert f'turnout_key_requests_total{{key="{key["id"]}",outcome="completed"}} 1.0' in text
    assert 'turnout_key_requests_total{key="unknown",outcome="rejected"} 1.0' in text
    assert f'turnout_key_cost_usd_total{{key="{key["id"]}"}}' in text
    assert "tk-made-up" not in text


@pytest.fixture
def gateway_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "gateway.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("turnout")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield path
    logger.removeHandler(handler)
    logger.setLevel(old)
    handler.close()


def test_a_soft_budget_alert_is_raised_once_per_period(
    gateway_factory: Factory,
    upstream: ScriptedUpstream,
    tmp_path: Path,
    admin_env: str,
    gateway_log: Path,
) -> None:
    store = tmp_path / "t.db"
    key = create_key(
        store,
        "--name",
        "watched",
        "--budget-usd",
        "0.01",
        "--budget-period",
        "1d",
        "--alert-at",
        "0.2",
    )
    gw = gateway_factory(gateway_yaml(upstream, store, price=PRICE))
    costs = []
    for _ in range(2):  # each crosses 20% of the budget: only the first alerts
        r = gw.http.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": HI},
            headers=bearer(key["key"]),
        )
        assert r.status_code == 200
        costs.append(float(r.headers["x-turnout-cost-usd"]))
    assert costs[0] >= 0.002 and sum(costs) < 0.01
    text = gw.http.get("/metrics", headers=bearer(ADMIN)).text
    assert f'turnout_key_budget_alerts_total{{key="{key["id"]}"}} 1.0' in text
    gw.stop()  # flushes spend and events to the store
    code, out = keys_cli(store, "show", key["id"], "--json")
    assert code == 0
    shown = orjson.loads(out)
    assert [e["kind"] for e in shown["events"]] == ["created", "budget_alert"]
    assert shown["period"]["requests"] == 2
    assert shown["period"]["spent_usd"] == pytest.approx(sum(costs))
    assert gateway_log.read_text().count("alert at 20%") == 1


def test_the_keys_plaintext_is_in_no_file_the_gateway_wrote(
    gateway_factory: Factory,
    upstream: ScriptedUpstream,
    tmp_path: Path,
    admin_env: str,
    gateway_log: Path,
) -> None:
    store = tmp_path / "t.db"
    cli_key = create_key(store, "--name", "cli", "--rpm", "2", "--models", "chat")
    gw = gateway_factory(gateway_yaml(upstream, store, price=PRICE))
    http_key = gw.http.post("/admin/v1/keys", headers=bearer(ADMIN), json={"name": "h"}).json()
    secrets = [cli_key["key"], http_key["key"], ADMIN]
    for key in (cli_key["key"], http_key["key"]):
        for model in ("chat", "other"):  # completed, 403, 429 …
            gw.http.post(
                "/v1/chat/completions",
                json={"model": model, "messages": HI, "stream": model == "other"},
                headers=bearer(key),
            )
    gw.http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": HI},
        headers=bearer(cli_key["key"] + "x"),
    )
    assert keys_cli(store, "rotate", cli_key["id"])[0] == 0
    gw.http.delete(f"/admin/v1/keys/{http_key['id']}", headers=bearer(ADMIN))
    gw.stop()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "t.db" for p in written) and gateway_log in written
    for path in written:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{path.name} holds a secret"
            assert secret[3:].encode() not in data
