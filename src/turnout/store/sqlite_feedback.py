"""Feedback in the record's SQLite file."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from turnout.store.errors import StoreError
from turnout.store.feedback import Feedback
from turnout.store.sqlite_errors import translated
from turnout.store.sqlite_schema import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    request_id TEXT,
    conversation_id TEXT,
    score REAL,
    label TEXT,
    comment TEXT,
    key_id TEXT
);
CREATE INDEX IF NOT EXISTS feedback_at ON feedback (at);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id);
"""
COLUMNS = "id, at, request_id, conversation_id, score, label, comment, key_id"


class SQLiteFeedbackLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # appended from a worker thread, closed from the loop
        conn = connect(path, "feedback")
        self._conn: sqlite3.Connection | None = conn

    def append(self, item: Feedback) -> None:
        with self._lock, translated(self.path):
            if self._conn is None:
                raise StoreError(f"record store {self.path}: the feedback log is closed")
            self._conn.execute(
                f"INSERT INTO feedback ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.id,
                    item.at,
                    item.request_id,
                    item.conversation_id,
                    item.score,
                    item.label,
                    item.comment,
                    item.key_id,
                ),
            )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def feedback_of(row: tuple[Any, ...]) -> Feedback:
    return Feedback(*row)
