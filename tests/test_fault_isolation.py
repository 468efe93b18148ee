"""Faults stay with the request that caused them: breakers, bugs inside turnout, tenants."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_harness import RunningGateway, start_gateway
from upstream import ScriptedUpstream, Step

Factory = Callable[[str], RunningGateway]
HI = [{"role": "user", "content": "hi"}]


def one_deployment(url: str, cooldown: str = "{failures: 3, seconds: 30}") -> str:
    return f"""
deployments:
  a: {{kind: openai, base_url: "{url}", model: m, cooldown: {cooldown}}}
models:
  assistant: {{deployments: [a], lifecycle: {{max_attempts: 3, backoff: {{base_s: 0.01}}}}}}
"""


def test_client_errors_do_not_open_the_breaker_for_everyone(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(one_deployment(upstream.base_url))
    upstream.script(*[Step(status=400) for _ in range(5)])
    for _ in range(5):
        assert gw.chat(model="assistant", messages=HI).status_code == 400
    assert gw.gateway.breakers["a"].failures == 0
    r = gw.chat(model="assistant", messages=HI)
    assert r.status_code == 200 and r.headers["x-turnout-attempts"] == "1"


def test_one_request_charges_a_breaker_once(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(one_deployment(upstream.base_url))
    upstream.script(*[Step(status=500) for _ in range(3)])
    r = gw.chat(model="assistant", messages=HI)
    assert r.status_code == 502 and r.headers["x-turnout-attempts"] == "3"
    # Three failures of one request would have opened it (failures: 3) for every other client.
    assert gw.gateway.breakers["a"].failures == 1
    assert gw.chat(model="assistant", messages=HI).status_code == 200


def test_after_its_rest_one_request_probes_and_a_success_closes_the_breaker(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(one_deployment(upstream.base_url, "{failures: 1, seconds: 0.3}"))
    upstream.script(Step(status=500))
    r = gw.chat(model="assistant", messages=HI)
    assert r.json()["error"]["code"] == "deployments_cooling_down"  # the failure opened it
    r = gw.chat(model="assistant", messages=HI)
    assert r.json()["error"]["code"] == "deployments_cooling_down"
    assert len(upstream.requests) == 1
    time.sleep(0.4)  # the rest runs out
    release = threading.Event()
    upstream.script(Step(hold=release))
    probe: list[httpx.Response] = []
    t = threading.Thread(target=lambda: probe.append(gw.chat(model="assistant", messages=HI)))
    t.start()
    upstream.wait_for_requests(2)
    # While the probe is out, the others keep away from the deployment.
    r = gw.chat(model="assistant", messages=HI)
    assert r.json()["error"]["code"] == "deployments_cooling_down"
    release.set()
    t.join()
    assert probe[0].status_code == 200
    rec = gw.record(probe[0].headers["x-turnout-request-id"])
    attempting = next(e for e in rec["events"] if e["state"] == "attempting")
    assert attempting["attrs"]["breaker_probe"] is True
    assert gw.chat(model="assistant", messages=HI).status_code == 200


def test_a_failed_probe_rests_the_deployment_again(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(one_deployment(upstream.base_url, "{failures: 1, seconds: 0.3}"))
    upstream.script(Step(status=500), Step(status=500))
    gw.chat(model="assistant", messages=HI)
    time.sleep(0.4)
    r = gw.chat(model="assistant", messages=HI)  # the probe, failing
    rec = gw.record(r.headers["x-turnout-request-id"])
    assert [a["error"] for a in rec["attempt_log"]] == ["server_error"]
    assert rec["events"][1 + 1]["attrs"]["breaker_probe"] is True
    assert len(upstream.requests) == 2
    r = gw.chat(model="assistant", messages=HI)
    assert r.json()["error"]["code"] == "deployments_cooling_down"
    assert len(upstream.requests) == 2  # resting again: nothing reached the upstream


# -- a bug inside turnout fails one request, cleanly -------------------------------------------


class Exploding:
    """A backend layer that fails the way a bug would: not with a classified UpstreamError."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.armed = True

    async def complete(self, request: Any) -> Any:
        if self.armed:
            self.armed = False
            raise RuntimeError("injected fault")
        return await self.inner.complete(request)

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        armed, self.armed = self.armed, False
        n = 0
        async for chunk in self.inner.stream(request):
            yield chunk
            n += 1
            if armed and n == 3:
                raise KeyError("injected fault mid-stream")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def exploding(upstream: ScriptedUpstream, tmp_path: Path) -> Iterator[tuple[RunningGateway, dict]]:
    layers: dict[str, Exploding] = {}

    def wrap(name: str, backend: Any) -> Any:
        layers[name] = Exploding(backend)
        return layers[name]

    gw = start_gateway(one_deployment(upstream.base_url), tmp_path / "t.db", wrap_backend=wrap)
    yield gw, layers
    gw.stop()


def test_an_exception_inside_turnout_is_an_openai_shaped_500_and_a_failed_record(
    exploding: tuple[RunningGateway, dict],
) -> None:
    gw, _ = exploding
    r = gw.chat(model="assistant", messages=HI)
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert err["type"] == "server_error" and err["code"] == "internal_error"
    assert "injected fault" not in r.text  # the exception's text stays in the log
    assert r.headers["x-should-retry"] == "false"
    rec = gw.record(r.headers["x-turnout-request-id"])
    assert rec["outcome"] == "failed" and rec["http_status"] == 500
    assert rec["events"][-1]["attrs"]["exception"] == "RuntimeError"
    assert gw.chat(model="assistant", messages=HI).status_code == 200


def test_an_exception_mid_stream_ends_the_stream_with_an_error_event(
    exploding: tuple[RunningGateway, dict], upstream: ScriptedUpstream
) -> None:
    gw, _ = exploding
    upstream.script(Step(content="one two three four five six seven"))
    body = {"model": "assistant", "messages": HI, "stream": True}
    with gw.http.stream("POST", "/v1/chat/completions", json=body) as r:
        text = r.read().decode()
    assert r.status_code == 200
    assert '"internal_error"' in text and "[DONE]" not in text
    rec = gw.record(r.headers["x-turnout-request-id"])
    assert rec["outcome"] == "failed"
    assert rec["events"][-1]["attrs"]["exception"] == "KeyError"
    assert gw.chat(model="assistant", messages=HI).status_code == 200


# -- a tenant is proven, not claimed -----------------------------------------------------------


def tenants_config(url: str) -> str:
    import hashlib

    digest = hashlib.sha256(b"vip-key").hexdigest()
    return f"""
tenants:
  vip: {{priority: high, api_key_sha256: ["{digest}"]}}
  batch: {{priority: low, header_claim: true}}
deployments:
  a: {{kind: openai, base_url: "{url}", model: m, max_concurrency: 1, max_queue: 8}}
models:
  assistant: {{deployments: [a], lifecycle: {{max_attempts: 1}}}}
"""


def test_a_tenant_named_by_header_without_its_key_gets_no_priority(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(tenants_config(upstream.base_url))
    release = threading.Event()
    upstream.script(Step(hold=release))  # busy until every other request waits in the queue
    results: list[tuple[str, httpx.Response]] = []

    def post(name: str, headers: dict[str, str]) -> None:
        body = {"model": "assistant", "messages": [{"role": "user", "content": name}]}
        results.append(
            (
                name,
                httpx.post(
                    gw.base_url + "/chat/completions", json=body, headers=headers, timeout=30
                ),
            )
        )

    threads = [threading.Thread(target=post, args=("busy", {}))]
    threads[0].start()
    upstream.wait_for_requests(1)
    for name, headers in [
        ("spoofs-vip", {"x-turnout-tenant": "vip", "x-turnout-priority": "high"}),
        ("anonymous-asks-high", {"x-turnout-priority": "high"}),
        ("batch-by-claim", {"x-turnout-tenant": "batch", "x-turnout-priority": "high"}),
        ("vip-by-key", {"authorization": "Bearer vip-key"}),
    ]:
        t = threading.Thread(target=post, args=(name, headers))
        t.start()
        threads.append(t)
        time.sleep(0.1)  # arrive in this order
    gate = gw.gateway.fleet.gates["a"]
    deadline = time.monotonic() + 10
    while gate.waiting < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join()
    arrivals = [r.body["messages"][0]["content"] for r in upstream.requests]
    assert arrivals == ["busy", "vip-by-key", "spoofs-vip", "anonymous-asks-high", "batch-by-claim"]
    by_name = dict(results)
    rec = gw.record(by_name["spoofs-vip"].headers["x-turnout-request-id"])
    routed = next(e for e in rec["events"] if e["state"] == "routed")
    assert routed["attrs"]["tenant_claim_ignored"] == "vip"
    rec = gw.record(by_name["vip-by-key"].headers["x-turnout-request-id"])
    routed = next(e for e in rec["events"] if e["state"] == "routed")
    assert routed["attrs"]["tenant"] == "vip"
