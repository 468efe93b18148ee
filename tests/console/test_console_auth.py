"""With keys on, the console answers only to the admin key — and the key goes nowhere after."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from console_browser import Tab
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream

Factory = Callable[[str], RunningGateway]
ADMIN = "console-admin-secret-0123456789"


@pytest.fixture
def gw(
    gateway_factory: Factory,
    upstream: ScriptedUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> RunningGateway:
    monkeypatch.setenv("CONSOLE_TEST_ADMIN_KEY", ADMIN)
    return gateway_factory(
        f"""
deployments:
  up: {{kind: openai, base_url: "{upstream.base_url}", model: m}}
models:
  chat: {{deployments: [up]}}
store: {{url: "sqlite:///{tmp_path / "keys.db"}", flush_interval_s: 0.05}}
auth: {{mode: keys, admin_key_env: CONSOLE_TEST_ADMIN_KEY}}
"""
    )


def client_key(gw: RunningGateway) -> dict[str, str]:
    r = gw.http.post(
        "/admin/v1/keys",
        json={"name": "team-a", "rpm": 100, "budget_usd": 5},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert r.status_code == 201, r.text
    created: dict[str, str] = r.json()
    return created


def test_pages_and_the_feed_refuse_without_the_admin_key(gw: RunningGateway) -> None:
    for path in ("/ui/", "/ui/requests", "/ui/requests/x", "/ui/deployments", "/ui/keys"):
        r = gw.http.get(path, headers={"authorization": "Bearer wrong"})
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next="), path
    assert gw.http.get("/ui/api/overview").status_code == 401
    # The admin key as a bearer header serves scripts and curl.
    bearer = {"authorization": f"Bearer {ADMIN}"}
    assert gw.http.get("/ui/api/overview", headers=bearer).status_code == 200
    # A client key is not the admin key.
    key = client_key(gw)["key"]
    assert (
        gw.http.get("/ui/requests", headers={"authorization": f"Bearer {key}"}).status_code == 303
    )


def test_signing_in_sets_a_session_that_is_not_the_key(
    gw: RunningGateway, tab: Tab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = client_key(gw)
    r = gw.http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key['key']}"},
    )
    rid = r.headers["x-turnout-request-id"]
    gw.record(rid)
    page = tab.page
    page.goto(gw.url + "/ui/requests")
    page.wait_for_url("**/ui/login?next=**")
    tab.shot("login")
    page.fill("input[name=key]", "not-the-key")
    page.get_by_role("button", name="Sign in").click()
    assert "needs the admin key" in page.locator(".problem").inner_text()
    page.fill("input[name=key]", ADMIN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/requests")  # back where the browser was going
    assert page.get_by_role("link", name=rid).count() == 1
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert ADMIN not in cookie["value"]
    assert ADMIN not in page.content()
    page.goto(gw.url + "/ui/keys")
    row = page.locator("table.keys tbody tr").inner_text()
    assert key["id"] in row and "team-a" in row and "100 rpm" in row and "$5" in row
    assert key["key"] not in page.content()
    tab.shot("keys")
    page.goto(gw.url + "/ui/")
    page.locator("#overview[data-updates]").wait_for()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/login")
    assert page.context.cookies() == []
    page.goto(gw.url + "/ui/requests")
    page.wait_for_url("**/ui/login?next=**")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert ADMIN not in logged and key["key"] not in logged
    # The one error shown: the wrong key's answer, a 401 (which the browser reports as such).
    assert len(tab.errors) == 1 and "401" in tab.errors[0], tab.errors


def test_a_forged_or_expired_session_is_refused(gw: RunningGateway) -> None:
    from turnout.console import session

    for token in (
        "1.abc",
        "99999999999.deadbeef",
        session.mint("another key"),
        session.mint(ADMIN, now=0),
    ):
        r = gw.http.get("/ui/requests", headers={"cookie": f"{session.COOKIE}={token}"})
        assert r.status_code == 303, token
    good = session.mint(ADMIN)
    r = gw.http.get("/ui/requests", headers={"cookie": f"{session.COOKIE}={good}"})
    assert r.status_code == 200


def test_login_sends_the_browser_only_to_console_pages(gw: RunningGateway) -> None:
    for target in ("https://elsewhere.example/", "//elsewhere.example/ui/", "/admin/v1/keys"):
        r = gw.http.post("/ui/login", data={"key": ADMIN, "next": target})
        assert r.status_code == 303 and r.headers["location"] == "/ui/", target


def priced(
    gateway_factory: Factory,
    upstream: ScriptedUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> RunningGateway:
    monkeypatch.setenv("CONSOLE_TEST_ADMIN_KEY", ADMIN)
    return gateway_factory(
        f"""
deployments:
  up: {{kind: openai, base_url: "{upstream.base_url}", model: m,
        price: {{input_per_mtok: 1000.0, output_per_mtok: 1000.0}}}}
models:
  chat: {{deployments: [up]}}
store: {{url: "sqlite:///{tmp_path / "priced.db"}", flush_interval_s: 0.05}}
auth: {{mode: keys, admin_key_env: CONSOLE_TEST_ADMIN_KEY, spend_flush_s: 0.05}}
"""
    )


def sign_in(tab: Tab, gw: RunningGateway) -> None:
    from turnout.console import session

    cookie = {"name": session.COOKIE, "value": session.mint(ADMIN), "url": gw.url + "/ui/"}
    tab.page.context.add_cookies([cookie])  # type: ignore[list-item]


def test_the_overview_raises_budget_and_canary_alarms(
    gateway_factory: Factory,
    upstream: ScriptedUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tab: Tab,
) -> None:
    from turnout.migrate.events import EventLog

    gw = priced(gateway_factory, upstream, tmp_path, monkeypatch)
    bearer = {"authorization": f"Bearer {ADMIN}"}
    r = gw.http.post(
        "/admin/v1/keys",
        json={"name": "burner", "budget_usd": 1, "alert_at": 0.000001},
        headers=bearer,
    )
    key = r.json()
    r = gw.http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "spend"}]},
        headers={"authorization": f"Bearer {key['key']}"},
    )
    assert r.status_code == 200, r.text
    store = gw.gateway.guard.store()
    while not any(e.kind == "budget_alert" for e in store.events(key["id"])):
        time.sleep(0.05)  # the guard's next flush writes the alert
    log = EventLog(gw.gateway.config.store.url)
    log.open()
    log.append("chat", "canary", "up", "started", stage=0, percent=5.0)
    log.append("chat", "canary", "up", "rolled_back", stage=0, detail={"reason": "errors rose"})
    log.close()
    overview = gw.http.get("/ui/api/overview", headers=bearer).json()
    raised = {(a["kind"], a["subject"]): a["message"] for a in overview["alarms"]}
    assert raised[("budget", "burner")] == "spent $0.0050 of its $1 budget this period"
    assert raised[("canary", "chat → up")] == "rolled back at stage 1: errors rose"
    sign_in(tab, gw)  # the page shows them too
    tab.page.goto(gw.url + "/ui/")
    tab.page.locator("#overview[data-updates]").wait_for()
    shown = tab.page.locator("#alarms").inner_text()
    assert "burner" in shown and "errors rose" in shown
    assert tab.errors == []


def test_keys_show_spend_against_budget_over_time_and_refusals_by_reason(
    gateway_factory: Factory,
    upstream: ScriptedUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tab: Tab,
) -> None:
    gw = priced(gateway_factory, upstream, tmp_path, monkeypatch)
    bearer = {"authorization": f"Bearer {ADMIN}"}
    spec = {"name": "capped", "rpm": 1, "budget_usd": 0.02, "budget_period": "1d"}
    key = gw.http.post("/admin/v1/keys", json=spec, headers=bearer).json()
    idle = gw.http.post("/admin/v1/keys", json={"name": "idle"}, headers=bearer).json()
    sent = []
    for _ in range(2):  # the second is over the key's rpm
        r = gw.http.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "spend"}]},
            headers={"authorization": f"Bearer {key['key']}"},
        )
        sent.append(r)
    assert [r.status_code for r in sent] == [200, 429]
    for r in sent:
        gw.record(r.headers["x-turnout-request-id"])
    sign_in(tab, gw)
    response = tab.page.goto(gw.url + "/ui/keys?over=24h")
    assert response is not None and response.status == 200
    usage = tab.page.locator(f"#usage-{key['id']}")
    assert usage.locator("svg.spend rect.spent").count() == 1
    assert "budget $0.02" in usage.locator("svg.spend").text_content()
    assert "$0.0050 this period" in usage.locator("svg.spend").text_content()
    (refused,) = usage.locator("table.refusals tbody tr").all_inner_texts()
    assert refused.split("\t") == [sent[1].json()["error"]["code"], "1"]
    quiet = tab.page.locator(f"#usage-{idle['id']}").inner_text()
    assert "no spend recorded" in quiet and "none refused" in quiet
    tab.shot("keys-spend")
    assert gw.http.get("/ui/keys?over=1y", headers=bearer).status_code == 400
    assert tab.errors == []


def test_wrong_keys_at_login_slow_that_address_and_no_other(gw: RunningGateway) -> None:
    import httpx

    form = {"key": "guess", "next": "/ui/"}
    for _ in range(5):
        assert gw.http.post("/ui/login", data=form).status_code == 401
    locked = gw.http.post("/ui/login", data=form)
    assert locked.status_code == 429 and locked.headers["retry-after"] == "30"
    assert "too many wrong keys" in locked.text
    # While it waits, not even the right key is tried from there.
    assert gw.http.post("/ui/login", data={"key": ADMIN}).status_code == 429
    other = httpx.Client(base_url=gw.url, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    with other:
        assert other.post("/ui/login", data={"key": "guess"}).status_code == 401
        signed = other.post("/ui/login", data={"key": ADMIN, "next": "/ui/keys"})
        assert signed.status_code == 303 and signed.headers["location"] == "/ui/keys"
