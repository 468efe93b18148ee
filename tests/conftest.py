"""Fixtures: real gateways on loopback and a scripted upstream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gateway_harness import RunningGateway, start_gateway
from pg_server import PostgresServer
from upstream import ScriptedUpstream


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as up:
        yield up


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Callable[[str], RunningGateway]]:
    started: list[RunningGateway] = []

    def make(config_yaml: str) -> RunningGateway:
        gw = start_gateway(config_yaml, tmp_path / f"turnout-{len(started)}.db")
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except RuntimeError as exc:
        # A store test that cannot reach PostgreSQL has not passed: fail, never skip.
        pytest.fail(f"the PostgreSQL store tests need a PostgreSQL server: {exc}", pytrace=False)
    yield server
    server.destroy()
