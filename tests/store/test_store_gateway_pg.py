"""A gateway recording into PostgreSQL: `turnout requests` and `trace` read it back, and a
PostgreSQL outage under load costs no request and no record beyond what is counted."""

from __future__ import annotations

import logging
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import orjson
import psycopg
import pytest
from gateway_harness import RunningGateway
from pg_server import PASSWORD, PostgresServer
from upstream import ScriptedUpstream

from turnout.cli import main

Factory = Callable[[str], RunningGateway]


def config(upstream: ScriptedUpstream, url: str, queue_size: int = 10_000) -> str:
    return textwrap.dedent(
        f"""
        store: {{url: "{url}", flush_interval_s: 0.05, queue_size: {queue_size}}}
        deployments:
          a: {{kind: openai, base_url: "{upstream.base_url}", model: m}}
        models:
          assistant: {{deployments: [a]}}
        """
    )


def ask(gw: RunningGateway, n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = gw.chat(model="assistant", messages=[{"role": "user", "content": f"q{i}"}])
        assert r.status_code == 200, r.text
        ids.append(r.headers["x-turnout-request-id"])
    return ids


def rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM requests").fetchone()
    return int(row[0]) if row else 0


def test_requests_and_trace_read_back_what_a_gateway_recorded_into_postgres(
    upstream: ScriptedUpstream,
    gateway_factory: Factory,
    pg_server: PostgresServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="turnout")
    url = pg_server.create_database()
    gw = gateway_factory(config(upstream, url))
    ids = ask(gw, 3)
    gw.gateway.writer.flush()
    assert main(["requests", "--store", url, "--json"]) == 0
    listed = orjson.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed] == ids[::-1]
    assert {r["outcome"] for r in listed} == {"completed"}
    assert main(["trace", ids[0][:12], "--store", url]) == 0
    trace = capsys.readouterr().out
    assert ids[0] in trace and "completed" in trace and "#1 a" in trace
    assert gw.record(ids[1])["request_body"]["messages"][0]["content"] == "q1"
    assert gw.http.get("/readyz").status_code == 200
    assert PASSWORD not in caplog.text  # the start-up line names the store, not its secret
    assert "postgresql://turnout@127.0.0.1" in caplog.text


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A cluster of this test's own: it is stopped and started again mid-test."""
    server = PostgresServer()
    yield server
    server.destroy()


def test_a_postgres_outage_under_load_buffers_up_to_the_bound_counts_the_rest_and_writes_on(
    upstream: ScriptedUpstream, gateway_factory: Factory, own_server: PostgresServer
) -> None:
    url = own_server.create_database()
    gw = gateway_factory(config(upstream, url, queue_size=40))
    writer = gw.gateway.writer
    ask(gw, 10)
    writer.flush()
    assert rows(url) == 10

    statuses: list[int] = []
    stop = threading.Event()

    def client() -> None:  # a client that keeps asking through the outage and the return
        while not stop.is_set():
            r = gw.chat(model="assistant")
            statuses.append(r.status_code)

    def until(what: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not what():
            assert time.monotonic() < deadline, (len(statuses), writer.problem())
            time.sleep(0.02)

    clients = [threading.Thread(target=client) for _ in range(4)]
    for c in clients:
        c.start()
    try:
        until(lambda: len(statuses) >= 20)
        own_server.stop()
        down_at = len(statuses)
        until(lambda: writer.failing is not None and len(statuses) >= down_at + 100)
        ready = gw.http.get("/readyz")
        assert ready.status_code == 503 and "cannot be written" in ready.text
        assert PASSWORD not in ready.text
        assert writer.dropped > 0  # more came than the bound holds: counted, not waited for
        assert writer.pending <= 40
        metrics = gw.http.get("/metrics").text
        assert "turnout_records_dropped_total" in metrics
        own_server.start()
        until(lambda: writer.failing is None)
        back_at = len(statuses)
        until(lambda: len(statuses) >= back_at + 50)  # and the load goes on after the return
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=30)
    assert set(statuses) == {200}  # no request failed or was held back by the outage
    writer.flush()
    # Every answered request is in the record, but those counted as dropped.
    assert rows(url) == 10 + len(statuses) - writer.dropped
    assert gw.http.get("/readyz").status_code == 200
