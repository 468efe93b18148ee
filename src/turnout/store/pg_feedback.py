"""Feedback in PostgreSQL."""

from __future__ import annotations

from typing import Any

from turnout.store import pg_pool
from turnout.store.errors import StoreError
from turnout.store.feedback import Feedback
from turnout.store.location import describe

COLUMNS = "id, at, request_id, conversation_id, score, label, comment, key_id"


class PostgresFeedbackLog:
    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = pg_pool.acquire(url)

    def append(self, item: Feedback) -> None:
        pool = self._pool
        if pool is None:
            raise StoreError(f"record store {describe(self.url)}: the feedback log is closed")
        with pg_pool.connection(pool, self.url) as conn:
            conn.execute(
                f"INSERT INTO feedback ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (item.id, item.at, item.request_id, item.conversation_id, item.score,
                 item.label, item.comment, item.key_id),
            )  # fmt: skip

    def close(self) -> None:
        if self._pool is not None:
            self._pool = None
            pg_pool.release(self.url)
