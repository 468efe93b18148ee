"""The store's tests run on both databases: `new_store()` gives the URL of a fresh, empty
store, a SQLite file or a PostgreSQL database in the session's throwaway cluster."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from pg_server import PostgresServer


@pytest.fixture(params=["sqlite", "postgres"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    if request.param == "sqlite":
        numbers = itertools.count()
        return lambda: f"sqlite:///{tmp_path / f'r{next(numbers)}.db'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database
