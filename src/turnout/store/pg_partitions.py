"""The PostgreSQL record's requests table, one partition per UTC day of `started`.

A partition is made before the first row of its day is written (and today's and the next
days' ahead of time), so no write waits on one; retention drops whole days, which frees their
space at once, where deleting rows would leave it to vacuum.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable

import psycopg

from turnout.config.schema import Retention
from turnout.store.retention import Pruned

DAY_S = 86400
AHEAD_DAYS = 2  # partitions kept ready beyond today
LOCK_KEY = 0x7475726E6F7575  # partition changes, one process at a time
_NAME = re.compile(r"requests_d(\d{8})")


def day_of(started: float) -> int:
    return math.floor(started / DAY_S)


def name_of(day: int) -> str:
    return "requests_d" + dt.datetime.fromtimestamp(day * DAY_S, dt.UTC).strftime("%Y%m%d")


def _day_of_name(name: str) -> int | None:
    found = _NAME.fullmatch(name)
    if found is None:
        return None
    when = dt.datetime.strptime(found.group(1), "%Y%m%d").replace(tzinfo=dt.UTC)
    return day_of(when.timestamp())


def existing(conn: psycopg.Connection) -> dict[int, str]:
    """The day of each partition of the requests table, with its name."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'requests'::regclass"
    ).fetchall()
    out: dict[int, str] = {}
    for (name,) in rows:
        day = _day_of_name(name)
        if day is not None:
            out[day] = name
    return out


class Partitions:
    """The days a process knows to have a partition, so a write asks the server only for a
    day it has not seen."""

    def __init__(self) -> None:
        self.known: set[int] = set()

    def ensure(self, conn: psycopg.Connection, days: Iterable[int]) -> None:
        missing = set(days) - self.known
        if not missing:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            have = existing(conn)
            for day in sorted(missing - have.keys()):
                conn.execute(
                    f"CREATE TABLE {name_of(day)} PARTITION OF requests "  # type: ignore[arg-type]
                    f"FOR VALUES FROM ({day * DAY_S}) TO ({(day + 1) * DAY_S})"
                )
        self.known |= missing | have.keys()

    def ahead(self, conn: psycopg.Connection, now: float) -> None:
        today = day_of(now)
        self.ensure(conn, range(today, today + AHEAD_DAYS + 1))


def table_bytes(conn: psycopg.Connection, names: Iterable[str]) -> dict[str, int]:
    names = list(names)
    if not names:
        return {}
    rows = conn.execute(
        "SELECT n, pg_total_relation_size(n::regclass) FROM unnest(%s::text[]) AS n", (names,)
    ).fetchall()
    return {str(n): int(size) for n, size in rows}


def prune(conn: psycopg.Connection, retention: Retention, now: float, parts: Partitions) -> Pruned:
    """Drop the days older than `max_age_days` (a day goes when all of it is), then the oldest
    days while the record is over `max_bytes`. Today's partition is never dropped."""
    days = existing(conn)
    sizes = table_bytes(conn, days.values())
    out = Pruned(bytes_before=sum(sizes.values()))
    today = day_of(now)
    cutoff = now - retention.max_age_days * DAY_S if retention.max_age_days > 0 else None
    used = out.bytes_before
    for day in sorted(days):
        if day >= today:
            break
        name = days[day]
        by_age = cutoff is not None and (day + 1) * DAY_S <= cutoff
        by_size = retention.max_bytes > 0 and used > retention.max_bytes
        if not (by_age or by_size):
            break
        with conn.transaction():
            row = conn.execute(f"SELECT count(*) FROM {name}").fetchone()  # type: ignore[arg-type]
            conn.execute(f"DROP TABLE {name}")  # type: ignore[arg-type]
        count = int(row[0]) if row else 0
        if by_age:
            out.by_age += count
        else:
            out.by_size += count
        used -= sizes.get(name, 0)
        parts.known.discard(day)
    out.bytes_after = used
    return out
