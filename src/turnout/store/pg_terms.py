"""The fleet's terms of leadership in PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

from turnout.store import pg_pool
from turnout.store.errors import StoreError
from turnout.store.location import describe
from turnout.store.terms import LEADER

REGISTER = (
    "INSERT INTO fleet_term (name, epoch, replica, at) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch, replica = excluded.replica, "
    "at = excluded.at WHERE excluded.epoch > fleet_term.epoch "
)


class PostgresTermLog:
    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = pg_pool.acquire(url)

    def register(self, epoch: int, replica: str) -> int:
        if self._pool is None:
            raise StoreError(f"record store {describe(self.url)}: the term log is closed")
        with pg_pool.connection(self._pool, self.url) as conn:
            conn.execute(REGISTER, (LEADER, epoch, replica, time.time()))
            row = conn.execute("SELECT epoch FROM fleet_term WHERE name = %s", (LEADER,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        if self._pool is not None:
            self._pool = None
            pg_pool.release(self.url)
