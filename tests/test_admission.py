"""Admission control: caps, priorities, fair shares and deadlines, at the gateway."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

from turnout.routing.admission import Gate, Shed

Factory = Callable[[str], RunningGateway]


def test_gate_serves_higher_priority_then_fair_shares() -> None:
    async def main() -> list[str]:
        gate = Gate(capacity=1, max_queue=10)
        order: list[str] = []
        await gate.enter(1, "holder", 10, 1.0, None)

        async def one(name: str, priority: int, tenant: str, tokens: float) -> None:
            await gate.enter(priority, tenant, tokens, 1.0, None)
            order.append(name)
            await asyncio.sleep(0)
            gate.leave()

        tasks = [
            asyncio.create_task(one("a1", 1, "a", 1000)),
            asyncio.create_task(one("a2", 1, "a", 1000)),
            asyncio.create_task(one("a3", 1, "a", 1000)),
            asyncio.create_task(one("b1", 1, "b", 50)),
            asyncio.create_task(one("low", 2, "c", 1)),
            asyncio.create_task(one("high", 0, "d", 5000)),
        ]
        await asyncio.sleep(0.01)
        gate.leave()  # the holder finishes
        await asyncio.gather(*tasks)
        return order

    order = asyncio.run(main())
    assert order[0] == "high"  # priority first, however long
    assert order[-1] == "low"
    # Tenant b's one short request does not wait behind all of a's long ones.
    assert order.index("b1") < order.index("a2")


def test_gate_sheds_when_the_queue_is_full_and_frees_abandoned_places() -> None:
    async def main() -> None:
        gate = Gate(capacity=1, max_queue=1)
        await gate.enter(1, "t", 1, 1.0, None)
        waiting = asyncio.create_task(gate.enter(1, "t", 1, 1.0, None))
        await asyncio.sleep(0)
        with pytest.raises(Shed):
            await gate.enter(1, "t", 1, 1.0, None)
        with pytest.raises(Shed, match="deadline"):
            await gate.enter(1, "t", 1, 1.0, 0.01, queue_limit=False)
        waiting.cancel()
        await asyncio.sleep(0)
        gate.leave()
        assert gate.in_use == 0 and gate.waiting == 0

    asyncio.run(main())


def config(url: str) -> str:
    return f"""
tenants:
  batch: {{priority: low, header_claim: true}}
deployments:
  a: {{kind: openai, base_url: "{url}", model: m, max_concurrency: 1, max_queue: 8}}
models:
  assistant: {{deployments: [a], lifecycle: {{max_attempts: 1}}}}
"""


def _post(gw: RunningGateway, headers: dict[str, str], out: list, name: str) -> None:
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        headers=headers,
        timeout=30,
        json={
            "model": "assistant",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": name}],
        },
    )
    out.append((name, r))


def test_request_that_would_miss_its_deadline_is_shed_early(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url))
    upstream.script(Step(delay_s=1.0))
    results: list = []
    busy = threading.Thread(target=_post, args=(gw, {}, results, "busy"))
    busy.start()
    upstream.wait_for_requests(1)
    started = time.monotonic()
    r = gw.http.post(
        "/v1/chat/completions",
        headers={"x-turnout-deadline-ms": "200"},
        json={
            "model": "assistant",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    assert time.monotonic() - started < 0.5  # shed at once, not after waiting
    assert r.status_code == 503 and r.json()["error"]["code"] == "shed"
    assert int(r.headers["retry-after"]) >= 1
    rec = gw.record(r.headers["x-turnout-request-id"])
    assert [e["state"] for e in rec["events"]] == ["received", "routed", "shed"]
    assert "deadline" in rec["events"][-1]["attrs"]["reason"]
    patient = gw.http.post(
        "/v1/chat/completions",
        headers={"x-turnout-deadline-ms": "30000"},
        json={
            "model": "assistant",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "y"}],
        },
    )
    assert patient.status_code == 200
    busy.join()
    assert results[0][1].status_code == 200
    assert len(upstream.requests) == 2


def test_the_queue_is_counted_once_when_judging_a_deadline(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url))
    upstream.default = Step(delay_s=0.5)
    for _ in range(3):  # learn the service time: ~0.5 s
        assert gw.chat(model="assistant", max_tokens=10).status_code == 200
    results: list = []
    blockers = [threading.Thread(target=_post, args=(gw, {}, results, f"b{i}")) for i in range(3)]
    for t in blockers:
        t.start()
    est = gw.gateway.estimates["a"]
    deadline = time.monotonic() + 10
    while (est.in_flight, est.queued) != (1, 2) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert (est.in_flight, est.queued) == (1, 2)

    def ask(deadline_ms: int) -> httpx.Response:
        return gw.http.post(
            "/v1/chat/completions",
            headers={"x-turnout-deadline-ms": str(deadline_ms)},
            json={
                "model": "assistant",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "x"}],
            },
        )

    tight = ask(1000)  # behind three others of ~0.5 s: cannot make it
    patient = ask(6000)  # ~2 s predicted; counting the queue twice would predict ~8 s
    for t in blockers:
        t.join()
    assert tight.status_code == 503 and tight.json()["error"]["code"] == "shed"
    assert patient.status_code == 200, patient.text


def test_priorities_order_the_queue_and_no_client_can_raise_its_own(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url))
    release = threading.Event()
    upstream.script(Step(hold=release))  # busy until every other request waits in the queue
    results: list = []
    threads = [threading.Thread(target=_post, args=(gw, {}, results, "busy"))]
    threads[0].start()
    upstream.wait_for_requests(1)
    for name, headers in [
        ("batch-claims-high", {"x-turnout-tenant": "batch", "x-turnout-priority": "high"}),
        ("normal", {}),
        ("high", {"x-turnout-priority": "high"}),
    ]:
        t = threading.Thread(target=_post, args=(gw, headers, results, name))
        t.start()
        threads.append(t)
        time.sleep(0.1)  # arrive in this order
    gate = gw.gateway.fleet.gates["a"]
    deadline = time.monotonic() + 10
    while gate.waiting < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join()
    arrivals = [r.body["messages"][0]["content"] for r in upstream.requests]
    # An unknown client's ceiling is `normal`: asking for `high` does not jump the queue.
    assert arrivals == ["busy", "normal", "high", "batch-claims-high"]
    assert all(r.status_code == 200 for _, r in results)


def test_bad_priority_header_is_rejected(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(config(upstream.base_url))
    r = gw.http.post(
        "/v1/chat/completions",
        headers={"x-turnout-priority": "urgent"},
        json={"model": "assistant", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 400 and "x-turnout-priority" in r.json()["error"]["message"]
