"""Retention on PostgreSQL drops whole days of the requests table, by age and by size."""

from __future__ import annotations

import time

import psycopg
from pg_server import PostgresServer
from test_store_read import served

from turnout.config.schema import Retention
from turnout.store.writer import RecordWriter

DAY = 86400.0


def partitions(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'requests'::regclass"
        ).fetchone()
    return int(row[0]) if row else 0


def ids(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM requests ORDER BY id").fetchall()]


def writer_with(url: str, retention: Retention, ages_days: dict[str, float]) -> RecordWriter:
    writer = RecordWriter(url, "full", 60, 1000, retention)
    writer.open()
    now = time.time()
    for run_id, age in ages_days.items():
        run = served(run_id, 0)
        run.started = now - age * DAY
        writer.submit(run)
    writer.flush()
    return writer


def test_days_older_than_max_age_are_dropped_whole(pg_server: PostgresServer) -> None:
    url = pg_server.create_database()
    ages = {"old1": 40, "old2": 40.2, "old3": 32, "edge": 29.5, "new": 0.01}
    writer = writer_with(url, Retention(max_age_days=30, max_bytes=0, check_s=3600), ages)
    try:
        before = partitions(url)
        writer.enforce_retention()
        assert writer.pruned == 3
        assert ids(url) == ["edge", "new"]
        assert partitions(url) == before - 2  # two days went, as tables
    finally:
        writer.close()


def test_over_max_bytes_the_oldest_days_go_and_today_stays(pg_server: PostgresServer) -> None:
    url = pg_server.create_database()
    ages = {"a": 3, "b": 3, "c": 2, "today": 0.0}
    writer = writer_with(url, Retention(max_age_days=0, max_bytes=1, check_s=3600), ages)
    try:
        writer.enforce_retention()
        assert writer.pruned == 3
        assert ids(url) == ["today"]
        writer.submit(served("later", time.time() - served("x", 0).started))
        writer.flush()
        assert ids(url) == ["later", "today"]  # writing goes on after days were dropped
    finally:
        writer.close()
