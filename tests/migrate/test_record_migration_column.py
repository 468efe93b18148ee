"""A store from before model migration gains the `migration` column and keeps its rows."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from turnout.store.query import list_requests
from turnout.store.sqlite import SCHEMA, RecordWriter

OLD_SCHEMA = SCHEMA.replace(",\n    migration TEXT\n", "\n")


def _old_store(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    # Recent: a record older than store.retention.max_age_days would be pruned on open.
    conn.execute(
        "INSERT INTO requests (id, started, model, operation, stream, outcome, deployments, "
        "attempts, prompt_tokens, completion_tokens, cost_usd, events, attempt_log) "
        "VALUES ('r1', ?, 'm', 'chat', 0, 'completed', '[]', 1, 1, 1, 0.0, '[]', '[]')",
        (time.time(),),
    )
    conn.commit()
    conn.close()


def test_an_old_store_is_listed_and_then_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_store(path)
    url = f"sqlite:///{path}"
    (row,) = list_requests(url)  # read-only: the column is simply absent
    assert row["id"] == "r1" and row["migration"] is None
    writer = RecordWriter(url, "full", 0.05, 100)
    writer.open()
    writer.close()
    columns = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(requests)")}
    assert "migration" in columns
    assert [r["id"] for r in list_requests(url)] == ["r1"]
