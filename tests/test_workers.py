"""`turnout serve --workers 2` as real processes: a real Redis, a scripted loopback upstream,
the record in one SQLite file."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from redis_server import RedisServer
from upstream import ScriptedUpstream, Step
from workers_helpers import Group, chat, counter, until, write_config

COMPLETED = 'model="assistant",outcome="completed"'


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def group(
    tmp_path_factory: pytest.TempPathFactory, redis: RedisServer, upstream: ScriptedUpstream
) -> Iterator[Group]:
    config = write_config(tmp_path_factory.mktemp("workers"), upstream.base_url, redis.url)
    g = Group(config, 2)
    yield g
    g.terminate()


def _scrapes_by_worker(url: str) -> dict[str, str]:
    """/metrics as each worker answers it (a new connection each, until both have answered)."""
    seen: dict[str, str] = {}

    def both() -> dict[str, str] | None:
        r = httpx.get(f"{url}/metrics", timeout=30)
        seen[r.headers["x-turnout-worker"]] = r.text
        return seen if len(seen) == 2 else None

    return until(both, lambda: False, "a scrape from each worker")


def test_both_workers_answer_and_every_request_is_recorded_exactly_once(group: Group) -> None:
    before = set(group.records())
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: chat(group.url), range(40)))
    assert all(r.status_code == 200 for r in answers)
    assert {r.headers["x-turnout-worker"] for r in answers} == {"0", "1"}
    ids = {r.headers["x-turnout-request-id"] for r in answers}
    assert len(ids) == 40

    def recorded() -> list[str] | None:
        rows = group.records()
        return rows if len(rows) >= len(before) + 40 else None

    rows = until(recorded, lambda: group.proc.poll() is not None, "40 more records")
    assert len(rows) == len(set(rows)) == len(before) + 40
    assert set(rows) - before == ids


def test_a_scrape_of_either_worker_counts_the_requests_of_both(group: Group) -> None:
    total = counter(_scrapes_by_worker(group.url)["0"], "turnout_requests_total", COMPLETED)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: chat(group.url), range(20)))
    assert {r.headers["x-turnout-worker"] for r in answers} == {"0", "1"}
    scrapes = _scrapes_by_worker(group.url)
    for text in scrapes.values():
        assert counter(text, "turnout_requests_total", COMPLETED) == total + 20
        assert counter(text, "turnout_requests_in_flight", 'model="assistant"') == 0
        assert "\nturnout_shared_state_up 1.0\n" in text


def test_a_killed_worker_is_restarted_and_its_counts_stay_in_the_totals(group: Group) -> None:
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: chat(group.url), range(20)))
    assert {r.headers["x-turnout-worker"] for r in answers} == {"0", "1"}
    total = counter(_scrapes_by_worker(group.url)["0"], "turnout_requests_total", COMPLETED)
    assert total >= 20
    mark = len(group.text())
    victim = group.pids()[1]
    os.kill(victim, signal.SIGKILL)
    group.wait_for(r"worker 1 stopped unexpectedly \(killed by SIGKILL\); restarting it", mark)
    again = group.wait_for(r"worker 1 ready again \(pid (\d+)\)", mark)
    assert int(again.group(1)) != victim
    for text in _scrapes_by_worker(group.url).values():
        assert counter(text, "turnout_requests_total", COMPLETED) == total
    assert chat(group.url).status_code == 200


def test_sigterm_drains_the_workers_letting_requests_in_flight_finish(
    tmp_path: Path, redis: RedisServer
) -> None:
    release = threading.Event()
    with ScriptedUpstream(default=Step(hold=release)) as up:
        g = Group(write_config(tmp_path, up.base_url, redis.url), 2)
        pids = set(g.pids().values())
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(chat, g.url)
            up.wait_for_requests(1, timeout=60)
            g.proc.send_signal(signal.SIGTERM)
            g.wait_for("SIGTERM: draining 2 workers")
            until(lambda: _refused(g.port), lambda: held.done(), "the port to stop accepting")
            release.set()
            answer = held.result(timeout=60)
        assert answer.status_code == 200
        assert g.proc.wait(timeout=120) == 0
    assert g.records() == [answer.headers["x-turnout-request-id"]]
    assert "all 2 workers stopped" in g.text()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_workers_drain_by_themselves_when_the_supervisor_is_killed(
    tmp_path: Path, redis: RedisServer, upstream: ScriptedUpstream
) -> None:
    g = Group(write_config(tmp_path, upstream.base_url, redis.url), 2)
    pids = set(g.pids().values())
    answer = chat(g.url)
    g.proc.send_signal(signal.SIGKILL)
    g.proc.wait(timeout=60)
    g.wait_for(r"\[worker \d\]: the supervisor is gone: draining")  # each notices on its own

    def all_gone() -> bool:
        return not any(_alive(pid) for pid in pids)

    until(all_gone, lambda: False, "every worker to exit")
    assert g.records() == [answer.headers["x-turnout-request-id"]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # An exited worker whose parent died is reaped by init; until then it is a zombie.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_follow_up_finds_a_response_another_worker_gave_a_moment_ago(
    tmp_path: Path, redis: RedisServer, upstream: ScriptedUpstream
) -> None:
    """previous_response_id right after the answer, on a new connection: often another worker,
    whose record writer has not written the first turn yet (it flushes once a second here)."""
    g = Group(write_config(tmp_path, upstream.base_url, redis.url, flush_s=1.0), 2)
    served: set[tuple[str, str]] = set()
    try:
        for _ in range(8):
            with httpx.Client(base_url=g.url, timeout=30) as client:
                first = client.post("/v1/responses", json={"model": "assistant", "input": "hi"})
            assert first.status_code == 200, first.text
            turn = {
                "model": "assistant",
                "input": "more",
                "previous_response_id": first.json()["id"],
            }
            with httpx.Client(base_url=g.url, timeout=30) as client:
                second = client.post("/v1/responses", json=turn)
            assert second.status_code == 200, second.text
            served.add((first.headers["x-turnout-worker"], second.headers["x-turnout-worker"]))
    finally:
        g.terminate()
    assert ("0", "1") in served or ("1", "0") in served
