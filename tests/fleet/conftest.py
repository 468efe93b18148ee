from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import PostgresServer
from redis_server import RedisServer


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def record_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The record every replica writes: one SQLite file, or one PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'record.db'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database()
