"""Retention: the oldest records go, by age and by the size of the store, a batch at a time.

Runs on the writer's thread between flushes, so it never contends with the request path; each
batch is one short transaction, so a flush waits at most one batch. A store created by this
version uses incremental auto-vacuum and the file shrinks; an older store reuses the freed
pages, so its file stops growing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from turnout.config.schema import Retention

BATCH = 500  # records per delete transaction
SLICE = 20  # batches per call; the writer calls again after its next flush when more is left
SLACK = 0.9  # pruning by size goes this far below the limit, so it does not run every check


@dataclass(slots=True)
class Pruned:
    by_age: int = 0
    by_size: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    more: bool = False  # the slice ended before the limits were met

    @property
    def records(self) -> int:
        return self.by_age + self.by_size


def used_bytes(conn: sqlite3.Connection) -> int:
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int((pages - free) * page_size)


def prune(conn: sqlite3.Connection, retention: Retention, now: float) -> Pruned:
    out = Pruned(bytes_before=used_bytes(conn))
    batches = 0
    if retention.max_age_days > 0:
        cutoff = now - retention.max_age_days * 86400
        while (n := _delete_oldest(conn, BATCH, before=cutoff)) > 0:
            out.by_age += n
            batches += 1
            if batches >= SLICE:
                out.more = True
                break
    if not out.more and retention.max_bytes > 0 and used_bytes(conn) > retention.max_bytes:
        target = retention.max_bytes * SLACK
        while (used := used_bytes(conn)) > target:
            if batches >= SLICE:
                out.more = True
                break
            count = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
            if count == 0:
                break  # what is left is not the records'
            per_record = used / count
            n = _delete_oldest(conn, min(BATCH, max(1, int((used - target) / per_record))))
            if n == 0:
                break
            out.by_size += n
            batches += 1
    if out.records:
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:  # incremental
            # executescript steps it to the end; execute() would free a single page.
            conn.executescript("PRAGMA incremental_vacuum;")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    out.bytes_after = used_bytes(conn)
    return out


def _delete_oldest(conn: sqlite3.Connection, n: int, before: float | None = None) -> int:
    where = "" if before is None else "WHERE started < ? "
    args: tuple[float | int, ...] = (n,) if before is None else (before, n)
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(
            "DELETE FROM requests WHERE id IN "
            f"(SELECT id FROM requests {where}ORDER BY started LIMIT ?)",
            args,
        )
    return cur.rowcount
