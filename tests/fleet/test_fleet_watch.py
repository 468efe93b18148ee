"""The fingerprint watch in a fleet: only the leader probes, and a successor takes over."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from redis_server import RedisServer
from upstream import ScriptedUpstream, Step

from turnout.backends.openai_http import OpenAIHTTPBackend
from turnout.fingerprint import Budget, FingerprintStore, builtin_suite, collect, parse_watch
from turnout.fingerprint.watch import Watcher
from turnout.fleet.leader import Elected


async def eventually(check: Callable[[], bool], within_s: float = 120.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


def test_only_the_leader_probes_and_a_successor_carries_on(
    redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("turnout.fingerprint.watch.FIRST_CHECK_S", 0.1)
    monkeypatch.setattr("turnout.fingerprint.watch.FOLLOW_S", 0.1)
    url = f"sqlite:///{tmp_path / 'record.db'}"
    settings = parse_watch({"deployments": {"edge": {"every_s": 1, "samples": 8}}})
    ups = [ScriptedUpstream(Step(content="Paris.")).start() for _ in range(2)]

    async def scenario(probed: Callable[[int], int]) -> None:
        backends = [OpenAIHTTPBackend("edge", up.base_url, "m") for up in ups]
        for b in backends:
            await b.start()
        with FingerprintStore(url) as store:
            baseline = await collect(backends[0], builtin_suite(), budget=Budget(max_samples=8))
            store.save_run(baseline)
            store.set_baseline("edge", baseline.id, "edge")
        for up in ups:
            up.requests.clear()
        leaders = [Elected(redis.url, 1.0, replica=f"r{k}") for k in range(2)]
        watchers = [
            Watcher(
                settings,
                backends={"edge": backends[k]},
                store=FingerprintStore(url),
                leadership=leaders[k],
            )
            for k in range(2)
        ]
        try:
            for k in range(2):
                await leaders[k].start()
                await watchers[k].start()
            first = 0 if leaders[0].leader else 1
            other = 1 - first
            await eventually(lambda: probed(first) >= 8)
            assert probed(other) == 0  # the follower never probes
            await leaders[first].close()  # the leader goes: the other takes the lease and the watch
            await eventually(lambda: probed(other) >= 8)
        finally:
            for w in watchers:
                await w.stop()
            for leader in leaders:
                await leader.close()
            for b in backends:
                await b.close()

    try:
        asyncio.run(scenario(lambda k: len(ups[k].requests)))
    finally:
        for up in ups:
            up.stop()
