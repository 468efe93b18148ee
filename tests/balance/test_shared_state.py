"""Gateway replicas sharing routing state through a real `redis-server`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from emulators import Emulator
from gateway_harness import RunningGateway, start_gateway
from redis_server import RedisServer
from upstream import ScriptedUpstream, Step

from turnout.config import StateConfig
from turnout.routing.shared import SharedState


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def pair() -> Iterator[list[Emulator]]:
    fast = ("--step-base-ms", "2", "--step-per-seq-ms", "1", "--prefill-tps", "1000000",
            "--model", "emu")  # fmt: skip
    emus: list[Emulator] = []
    try:
        emus += [Emulator(*fast) for _ in range(2)]
        yield emus
    finally:
        for e in emus:
            e.stop()


@pytest.fixture
def slow_upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(Step(delay_s=0.3)) as up:
        yield up


def capped(url: str, state_url: str | None) -> str:
    state = f"state: {{url: '{state_url}', sync_s: 0.05}}\n" if state_url else ""
    return (
        f"deployments:\n  gpu: {{kind: openai, base_url: '{url}', model: m, max_concurrency: 2,"
        " max_queue: 64, rtt_probe_s: 0, scrape_s: 0}\n"
        "models:\n  fleet: {deployments: [gpu], routing: balanced}\n" + state
    )


def replicas(config: str, tmp_path: Path) -> list[RunningGateway]:
    return [start_gateway(config, tmp_path / f"replica-{k}.db") for k in range(2)]


def burst(gateways: list[RunningGateway], per_gateway: int) -> list[int]:
    """Requests to every replica at once; their status codes."""
    jobs = [g for g in gateways for _ in range(per_gateway)]

    def send(g: RunningGateway) -> int:
        with httpx.Client(base_url=g.url, timeout=30) as http:
            body = {"model": "fleet", "messages": [{"role": "user", "content": "hi"}]}
            return http.post("/v1/chat/completions", json=body).status_code

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(send, jobs))


def metric(gateway: RunningGateway, prefix: str) -> float:
    text = gateway.http.get("/metrics").text
    return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(prefix))


def test_two_replicas_sharing_redis_do_not_double_book_a_capped_instance(
    slow_upstream: ScriptedUpstream, redis: RedisServer, tmp_path: Path
) -> None:
    gateways = replicas(capped(slow_upstream.base_url, redis.url), tmp_path)
    try:
        assert burst(gateways, 6) == [200] * 12
    finally:
        for g in gateways:
            g.stop()
    assert slow_upstream.max_inflight == 2  # the cap, reached and never passed
    assert len(slow_upstream.requests) == 12


def test_without_shared_state_each_replica_caps_alone(
    slow_upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    gateways = replicas(capped(slow_upstream.base_url, None), tmp_path)
    try:
        assert burst(gateways, 6) == [200] * 12
    finally:
        for g in gateways:
            g.stop()
    assert slow_upstream.max_inflight > 2  # two caps of 2: the instance is double-booked


def test_when_redis_goes_away_the_replicas_keep_serving_alone(
    slow_upstream: ScriptedUpstream, redis: RedisServer, tmp_path: Path
) -> None:
    gateways = replicas(capped(slow_upstream.base_url, redis.url), tmp_path)
    try:
        assert burst(gateways, 2) == [200] * 4
        assert all(metric(g, "turnout_shared_state_up") == 1 for g in gateways)
        redis.stop()
        assert burst(gateways, 4) == [200] * 8  # no request fails for want of Redis
        for g in gateways:
            assert metric(g, "turnout_shared_state_up") == 0
            assert metric(g, "turnout_shared_state_errors_total") >= 1
        back = RedisServer(tmp_path / "redis-again", port=redis.port)
        try:
            time.sleep(1.5)  # past the retry pause: the next sync reconnects
            assert burst(gateways, 1) == [200] * 2
            assert all(metric(g, "turnout_shared_state_up") == 1 for g in gateways)
        finally:
            back.stop()
    finally:
        for g in gateways:
            g.stop()
    assert slow_upstream.max_inflight <= 4  # each replica still holds its own cap


def test_a_crashed_replicas_leases_expire(redis: RedisServer) -> None:
    config = StateConfig(url=redis.url, lease_ttl_s=1.0)

    async def scenario() -> tuple[list[str | None], str | None, str | None]:
        crashed, alive = SharedState(config), SharedState(config)
        await crashed.start(None)
        await alive.start(None)
        assert crashed._loop_task is not None
        crashed._loop_task.cancel()  # it stops renewing, as a killed process would
        taken = [await crashed.try_lease("gpu", 2) for _ in range(2)]
        refused = await alive.try_lease("gpu", 2)
        await asyncio.sleep(1.2)
        granted = await alive.try_lease("gpu", 2)
        await alive.close()
        await crashed._redis.aclose()
        return taken, refused, granted

    taken, refused, granted = asyncio.run(scenario())
    assert all(taken)
    assert refused is None  # both slots leased by the other replica
    assert granted  # its leases expired: the slot came back


def test_live_leases_are_renewed_past_their_ttl(redis: RedisServer) -> None:
    config = StateConfig(url=redis.url, lease_ttl_s=1.0, sync_s=0.05)

    async def scenario() -> str | None:
        holder, other = SharedState(config), SharedState(config)
        await holder.start(None)
        await other.start(None)
        assert await holder.try_lease("gpu", 1)
        await asyncio.sleep(1.5)  # a long generation: the lease outlives its first TTL
        refused = await other.try_lease("gpu", 1)
        await holder.close()
        await other.close()
        return refused

    assert asyncio.run(scenario()) is None


@pytest.mark.parametrize("shared", [True, False])
def test_replicas_balance_on_each_others_in_flight_work(
    redis: RedisServer, tmp_path: Path, shared: bool, pair: list[Emulator]
) -> None:
    emus = pair
    deps = "".join(
        f"  gpu-{k}: {{kind: openai, base_url: '{e.url}/v1', model: emu, scrape_s: 0,"
        " rtt_probe_s: 0, pass_fields: [emulate]}\n"
        for k, e in enumerate(emus)
    )
    config = (
        f"deployments:\n{deps}models:\n  fleet: {{deployments: [gpu-0, gpu-1], "
        f"routing: balanced}}\n"
    )
    if shared:
        config += f"state: {{url: '{redis.url}', sync_s: 0.05}}\n"
    a, b = replicas(config, tmp_path)
    long_body = {
        "model": "fleet",
        "messages": [{"role": "user", "content": "write a novel"}],
        "stream": True,
        "emulate": {"output_tokens": 100_000},
    }
    try:
        with (
            httpx.Client(base_url=a.url, timeout=60) as http,
            http.stream("POST", "/v1/chat/completions", json=long_body) as long_one,
        ):
            lines = long_one.iter_lines()
            next(lines)
            busy = long_one.headers["x-turnout-deployment"]
            time.sleep(0.3)  # a few syncs
            places = []
            for _ in range(10):
                r = b.chat(model="fleet", emulate={"output_tokens": 4})
                assert r.status_code == 200
                places.append(r.headers["x-turnout-deployment"])
        if shared:
            assert busy not in places, places  # b saw a's long generation through Redis
        else:
            assert places.count(busy) >= 3, places  # alone, b cannot know
    finally:
        a.stop()
        b.stop()


def test_replicas_learn_answer_lengths_from_each_other(redis: RedisServer, tmp_path: Path) -> None:
    with ScriptedUpstream(Step(content="a short answer")) as up:
        a, b = replicas(capped(up.base_url, redis.url), tmp_path)
        try:
            for _ in range(30):
                assert a.chat(model="fleet").status_code == 200
            time.sleep(0.3)  # a few syncs
            r = b.chat(model="fleet")
            routed = next(e for e in b.record(r.headers["x-turnout-request-id"])["events"]
                          if e["state"] == "routed")  # fmt: skip
        finally:
            a.stop()
            b.stop()
    # b answered nothing yet; without a's answers it would assume the prior, 256 tokens.
    assert routed["attrs"]["predicted_output_tokens"] < 20
