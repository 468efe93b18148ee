"""The console in a real browser against a real gateway with real traffic (keys off, loopback)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from console_browser import Tab
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

from turnout.store.page import RequestFilter
from turnout.store.read import open_reader

Factory = Callable[[str], RunningGateway]


def yaml(upstream: ScriptedUpstream, extra: str = "") -> str:
    return f"""
deployments:
  primary: {{kind: openai, base_url: "{upstream.base_url}", model: m, tags: [cloud],
             price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
  spare: {{kind: openai, base_url: "{upstream.base_url}", model: m, tags: [cloud]}}
models:
  assistant: {{deployments: [primary, spare], routing: policy, objective: fastest}}
  plain: {{deployments: [spare]}}
{extra}
"""


@pytest.fixture
def gw(gateway_factory: Factory, upstream: ScriptedUpstream) -> Iterator[RunningGateway]:
    yield gateway_factory(yaml(upstream))


def send(gw: RunningGateway, model: str = "assistant", **body: object) -> str:
    r = gw.chat(model=model, **body)
    rid = r.headers["x-turnout-request-id"]
    gw.record(rid)  # flushed: the record holds it
    return rid


def visit(tab: Tab, gw: RunningGateway, path: str) -> None:
    response = tab.page.goto(gw.url + path)
    assert response is not None and response.status == 200, path


def test_a_request_sent_appears_and_its_trace_shows_every_state(
    gw: RunningGateway, upstream: ScriptedUpstream, tab: Tab
) -> None:
    upstream.script(Step(status=503), Step(content="the answer"))
    rid = send(gw)
    visit(tab, gw, "/ui/requests")
    tab.page.get_by_role("link", name=rid).click()
    tab.page.wait_for_url(f"**/ui/requests/{rid}")
    states = tab.page.locator("table.states td:nth-child(2)").all_inner_texts()
    assert states == [
        "received",
        "routed",
        "attempting",
        "backoff",
        "attempting",
        "validating",
        "completed",
    ]
    cards = tab.page.locator(".cards .card")
    assert cards.count() == 2
    assert "overloaded" in cards.nth(0).inner_text()
    assert "stop" in cards.nth(1).inner_text()
    # The routing decision: both candidates, with what each was predicted to take and cost.
    candidates = tab.page.locator("table.candidates tbody tr").all_inner_texts()
    assert len(candidates) == 2 and any("chosen" in row for row in candidates)
    assert "the answer" in tab.page.locator("#bodies").inner_text()
    assert tab.page.locator("svg.timeline rect.bar").count() == 2
    tab.shot("trace")
    assert tab.errors == []


def test_filters_narrow_the_record(
    gw: RunningGateway, upstream: ScriptedUpstream, tab: Tab
) -> None:
    upstream.script(Step(status=400))
    failed = send(gw, model="plain")
    ok = send(gw)
    visit(tab, gw, "/ui/requests")
    assert tab.page.get_by_role("link", name=failed).count() == 1
    assert tab.page.get_by_role("link", name=ok).count() == 1
    tab.shot("requests")
    form = tab.page.locator("#filters")
    form.locator("select[name=outcome]").select_option("failed_upstream")
    form.get_by_role("button", name="Filter").click()
    tab.page.wait_for_url("**outcome=failed_upstream**")
    assert tab.page.get_by_role("link", name=failed).count() == 1
    assert tab.page.get_by_role("link", name=ok).count() == 0
    # Filters combine: the failing request went to `spare` only, so with `primary` none is left.
    form.locator("select[name=deployment]").select_option("primary")
    form.get_by_role("button", name="Filter").click()
    tab.page.wait_for_url("**deployment=primary**")
    assert tab.page.locator("table.requests").count() == 0
    visit(tab, gw, "/ui/requests?model=assistant&wire=chat.completions&last=1h")
    assert tab.page.get_by_role("link", name=ok).count() == 1
    assert tab.page.get_by_role("link", name=failed).count() == 0
    visit(tab, gw, "/ui/requests?wire=messages")
    assert tab.page.locator("table.requests").count() == 0
    assert tab.errors == []


def test_pages_follow_each_other_by_cursor_without_gaps_or_repeats(
    gw: RunningGateway, tab: Tab
) -> None:
    sent = [gw.chat(model="plain").headers["x-turnout-request-id"] for _ in range(55)]
    gw.record(sent[-1])
    visit(tab, gw, "/ui/requests?model=plain")
    first = tab.page.locator("table.requests tbody td:nth-child(2)").all_inner_texts()
    tab.page.get_by_role("link", name="older →").click()
    tab.page.wait_for_url("**before=**")
    second = tab.page.locator("table.requests tbody td:nth-child(2)").all_inner_texts()
    assert len(first) == 50 and len(second) == 5
    assert first + second == list(reversed(sent))
    assert tab.page.get_by_role("link", name="older →").count() == 0
    assert tab.errors == []


def test_the_overview_updates_live(gw: RunningGateway, tab: Tab) -> None:
    send(gw)
    visit(tab, gw, "/ui/")
    tab.page.locator("#overview[data-updates]").wait_for()
    rid = send(gw, model="plain")
    # The page polls; the request sent after it opened shows up without a reload.
    tab.page.get_by_role("link", name=rid).wait_for(timeout=15_000)
    by_model = tab.page.locator("#by-model").inner_text()
    assert "assistant" in by_model and "plain" in by_model
    assert "completed" in tab.page.locator("#outcomes").inner_text()
    assert tab.page.locator("#chart-rps polyline").count() == 1
    tab.shot("overview")
    assert tab.errors == []


def test_deployments_show_breakers_and_learned_estimates(
    gw: RunningGateway, upstream: ScriptedUpstream, tab: Tab
) -> None:
    send(gw, model="plain")
    visit(tab, gw, "/ui/deployments")
    rows = tab.page.locator("table.deployments tbody tr").all_inner_texts()
    assert [r.split("\t")[0] for r in rows] == ["primary", "spare"]
    assert all("closed" in r for r in rows)
    assert rows[1].split("\t")[8] == "1"  # answers learned from
    assert tab.errors == []


def test_keys_page_loads_with_keys_off(gw: RunningGateway, tab: Tab) -> None:
    visit(tab, gw, "/ui/keys")
    assert "keys are not checked" in tab.page.locator("main").inner_text()
    assert tab.errors == []


def test_bad_filters_are_a_clear_400_not_a_500(gw: RunningGateway) -> None:
    for query, words in (
        ("since=yesterday", "since must be a time"),
        ("last=3w", "last must be one of"),
        ("before=nope", "before is not a page cursor"),
    ):
        r = gw.http.get("/ui/requests?" + query)
        assert r.status_code == 400 and words in r.text, query
    assert gw.http.get("/ui/requests/no-such-id").status_code == 404
    assert gw.http.post("/ui/requests").status_code == 405


def test_server_ui_false_turns_the_console_off(
    gateway_factory: Factory, upstream: ScriptedUpstream
) -> None:
    gw = gateway_factory(yaml(upstream, "server: {ui: false}"))
    for path in ("/ui/", "/ui/requests", "/ui/static/console.js", "/ui/login"):
        assert gw.http.get(path).status_code == 404, path
    assert gw.chat(model="plain").status_code == 200


def test_the_record_pages_by_keyset_with_every_filter(gw: RunningGateway) -> None:
    rid = send(gw, model="plain")
    url = gw.gateway.config.store.url
    with open_reader(url) as reader:
        (row,) = reader.page(
            RequestFilter(model="plain", deployment="spare", wire="chat.completions")
        )
        assert row["id"] == rid and row["intent"] is None
        assert reader.page(RequestFilter(model="plain"), before=(row["started"], row["id"])) == []
        assert reader.page(RequestFilter(intent="rephrase")) == []
        assert reader.page(RequestFilter(since=row["started"] + 1)) == []
        assert reader.page(RequestFilter(until=row["started"] + 1))[0]["id"] == rid


ASKED = "How do I sort a list in Python?"
ANSWER = "Use sorted(my_list) for a new list, or my_list.sort() to sort it in place."
CORRECTION = "No, I meant sorting by the second item of each tuple."


def test_intent_signals_filter_the_record_and_show_the_conversations_behind_a_miss(
    gw: RunningGateway, upstream: ScriptedUpstream, tab: Tab
) -> None:
    upstream.default = Step(content=ANSWER)
    answer = send(gw, model="plain", messages=[{"role": "user", "content": ASKED}])
    turns = [ASKED, ANSWER, CORRECTION]
    messages = [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)]
    said = send(gw, model="plain", messages=messages)
    visit(tab, gw, "/ui/requests?intent=correction")
    assert tab.page.get_by_role("link", name=said).count() == 1
    assert tab.page.get_by_role("link", name=answer).count() == 0
    visit(tab, gw, "/ui/intent?by=model&since=1h")
    (row,) = tab.page.locator("table.intent tbody tr").all_inner_texts()
    assert row.split("\t")[:3] == ["plain", "2", "1"]
    examples = tab.page.locator("table.examples")
    assert CORRECTION in examples.inner_text()
    tab.shot("intent")
    examples.get_by_role("link", name=answer).click()
    tab.page.wait_for_url(f"**/ui/requests/{answer}")
    visit(tab, gw, f"/ui/requests/{said}")
    assert "correction" in tab.page.locator("#intent").inner_text()
    assert tab.errors == []


def test_migrations_page_loads_with_nothing_to_show(gw: RunningGateway, tab: Tab) -> None:
    visit(tab, gw, "/ui/migrations")
    assert "no canary or shadow recorded" in tab.page.locator("main").inner_text()
    assert tab.errors == []


def test_fingerprints_show_checks_over_time_and_alarms(gw: RunningGateway, tab: Tab) -> None:
    from turnout.store.fingerprints import AlarmRecord, CheckRecord, open_fingerprints

    send(gw)  # the record exists
    tables = open_fingerprints(gw.gateway.config.store.url)
    now = time.time()
    for i, p in enumerate((0.6, 0.4, 0.01, 0.001)):
        tables.save_check(
            CheckRecord(
                f"chk{i}", now - 400 + i * 100, "primary", "primary", "run1", p < 0.05, p, {}
            )
        )
    tables.save_alarm(AlarmRecord("alm1", now, "primary", "raised", "behaviour changed", {}))
    tables.close()
    visit(tab, gw, "/ui/fingerprints")
    assert tab.page.locator("svg.pvalues circle").count() == 4
    assert tab.page.locator("svg.pvalues circle.bad").count() == 2
    assert "behaviour changed" in tab.page.locator("table.alarms").inner_text()
    tab.shot("fingerprints")
    # The overview raises it with the alarms of now.
    visit(tab, gw, "/ui/")
    tab.page.locator("#overview[data-updates]").wait_for()
    assert "behaviour changed" in tab.page.locator("#alarms").inner_text()
    assert tab.errors == []


def test_mcp_guard_shows_held_tools_and_refused_calls(gw: RunningGateway, tab: Tab) -> None:
    from turnout.lifecycle.states import State
    from turnout.mcp.record import ToolCallRecord, held_record

    held = held_record("files", "delete_all", {"name": "delete_all"}, "unapproved", "new tool")
    refused = ToolCallRecord("files", "read", {"path": "/etc"}, {})
    refused.refuse(State.BLOCKED, "policy", "path outside the allowed roots")
    allowed = ToolCallRecord("files", "read", {"path": "a.txt"}, {})
    allowed.forward()
    allowed.run.transition(State.VALIDATING)
    allowed.run.transition(State.COMPLETED)
    for record in (held, refused, allowed):
        gw.gateway.writer.submit(record.run)
    gw.gateway.writer.flush()
    visit(tab, gw, "/ui/mcp")
    assert tab.page.locator("table.tools tbody tr").inner_text().split("\t")[:4] == [
        "files/read",
        "2",
        "1",
        "1",
    ]
    assert "new tool" in tab.page.locator("table.held").inner_text()
    assert "outside the allowed roots" in tab.page.locator("table.refused").inner_text()
    tab.shot("mcp")
    assert tab.errors == []


def test_a_trace_shows_privacy_findings_and_why_a_candidate_was_left_out(
    gateway_factory: Factory, upstream: ScriptedUpstream, tab: Tab
) -> None:
    gw = gateway_factory(
        f"""
deployments:
  onprem: {{kind: openai, base_url: "{upstream.base_url}", model: m, tags: [local]}}
  cloud: {{kind: openai, base_url: "{upstream.base_url}", model: m, tags: [cloud]}}
models:
  private: {{deployments: [cloud, onprem], routing: ordered, privacy: block}}
"""
    )
    text = "My card is 4111 1111 1111 1111 and my email is jane.doe@example.com."
    rid = send(gw, model="private", messages=[{"role": "user", "content": text}])
    visit(tab, gw, f"/ui/requests/{rid}")
    findings = tab.page.locator("table.findings tbody tr").all_inner_texts()
    assert findings == ["email\t1", "payment_card\t1"]
    cloud = tab.page.locator("table.candidates tbody tr", has_text="cloud").inner_text()
    assert "left out" in cloud and "privacy: email×1, payment_card×1" in cloud
    onprem = tab.page.locator("table.candidates tbody tr", has_text="onprem").inner_text()
    assert "chosen" in onprem
    assert tab.errors == []


def test_a_trace_of_a_huge_request_shows_the_start_of_its_body(
    gw: RunningGateway, tab: Tab
) -> None:
    rid = send(gw, model="plain", messages=[{"role": "user", "content": "x" * 600_000}])
    visit(tab, gw, f"/ui/requests/{rid}")
    bodies = tab.page.locator("#bodies").inner_text()
    assert "more characters (see turnout trace --json)" in bodies
    assert len(bodies) < 300_000
    assert tab.errors == []


def test_deployments_show_breaker_history_and_the_balancers_instances(
    gateway_factory: Factory, upstream: ScriptedUpstream, tab: Tab
) -> None:
    gw = gateway_factory(
        f"""
deployments:
  a: {{kind: openai, base_url: "{upstream.base_url}", model: m,
       cooldown: {{failures: 1, seconds: 60, probe_after_s: 0.05}}}}
  b: {{kind: openai, base_url: "{upstream.base_url}", model: m}}
models:
  fleet: {{deployments: [a, b], routing: balanced}}
  only-a: {{deployments: [a]}}
"""
    )
    upstream.script(Step(status=503))
    gw.chat(model="only-a")
    breaker = gw.gateway.breakers["a"]
    assert breaker.remaining_s() > 0
    while not breaker.half_open():
        time.sleep(0.01)  # its rest is 50 ms
    assert gw.chat(model="only-a").status_code == 200  # the probe: it closes
    assert gw.chat(model="fleet").status_code == 200
    visit(tab, gw, "/ui/deployments")
    history = tab.page.locator("table.breaker-history tbody tr").all_inner_texts()
    assert [r.split("\t")[1:3] for r in history] == [
        ["a", "closed"],
        ["a", "half-open"],
        ["a", "open"],
    ]
    assert "1 failure in a row; rests 0.05 s" in history[2]
    instances = tab.page.locator("table.instances tbody tr").all_inner_texts()
    assert [r.split("\t")[:2] for r in instances] == [["a", "healthy"], ["b", "healthy"]]
    assert all(r.split("\t")[2] == "0" for r in instances)  # nothing in flight now
    tab.shot("deployments")
    assert tab.errors == []


def test_mcp_guard_shows_the_pins_and_what_waits_for_approval_in_words(
    gw: RunningGateway, tab: Tab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from turnout.mcp.lockfile import LockFile, Observation, Pending, ServerPin

    config = tmp_path / "turnout-mcp.json"
    servers = {"mail": {"command": "node", "args": ["server.mjs"]}, "notes": {"command": "node"}}
    config.write_text(json.dumps({"lock": "mcp.lock", "mcpServers": servers}))
    send_email = {
        "name": "send_email",
        "description": "Send an email.",
        "inputSchema": {"type": "object", "properties": {"to": {"type": "string"}}},
    }
    package = {"kind": "npm", "name": "mail-server", "version": "1.0.0"}
    pinned = Observation({"command": "node"}, package, tools={"send_email": send_email})
    changed = json.loads(json.dumps(send_email))
    changed["inputSchema"]["properties"]["bcc"] = {"type": "string"}
    seen = Observation({"command": "node"}, package, tools={"send_email": changed})
    lock = LockFile.load(tmp_path / "mcp.lock")
    lock.servers["mail"] = ServerPin.of(pinned)
    lock.pending["mail"] = Pending(observation=seen)
    lock.save()
    monkeypatch.setenv("TURNOUT_MCP_CONFIG", str(config))
    visit(tab, gw, "/ui/mcp")
    (row,) = tab.page.locator("table.pinned tbody tr").all_inner_texts()
    assert row.split("\t")[:2] == ["mail", "npm mail-server@1.0.0"]
    assert row.split("\t")[3] == "send_email"
    held = tab.page.locator(".held-server").all_inner_texts()
    assert len(held) == 2
    assert "send_email: inputSchema gained property `bcc`" in held[0]
    assert held[1].startswith("notes") and "not pinned yet" in held[1]
    tab.shot("mcp-lock")
    assert tab.errors == []


def test_migrations_link_the_replay_reports_written_against_the_record(
    gw: RunningGateway, upstream: ScriptedUpstream, tab: Tab, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from turnout.cli import main

    for _ in range(3):
        send(gw, model="plain")
    url = gw.gateway.config.store.url
    config = tmp_path / "turnout.yaml"
    config.write_text(yaml(upstream, f'store: {{url: "{url}"}}'))
    report = tmp_path / "replay.html"
    argv = ["migrate", "replay", "--config", str(config), "--from", "plain", "--to", "primary"]
    argv += ["--out", str(tmp_path / "pairs.jsonl"), "--html", str(report), "--quiet"]
    with ThreadPoolExecutor(1) as pool:  # the browser's driver holds this thread's event loop
        assert pool.submit(main, argv).result() in (0, 1)
    visit(tab, gw, "/ui/migrations")
    (row,) = tab.page.locator("table.replays tbody tr").all_inner_texts()
    assert row.split("\t")[1:4] == ["plain", "primary", "3"]
    tab.shot("migrations")
    tab.page.locator("table.replays a").click()
    tab.page.wait_for_url("**/ui/migrations/report/**")
    assert tab.page.title() == "migration: plain → primary"
    assert "3 recorded requests replayed" in tab.page.inner_text("body")
    report.unlink()  # gone: the link says so, and nothing else is read in its place
    href = tab.page.url.removeprefix(gw.url)
    r = gw.http.get(href)
    assert r.status_code == 404 and "no longer at" in r.text
    assert gw.http.get("/ui/migrations/report/nope").status_code == 400
    assert gw.http.get("/ui/migrations/report/1.5").status_code == 404
    assert tab.errors == []
