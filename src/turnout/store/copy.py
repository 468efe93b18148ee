"""`turnout store copy SRC DST`: every table of one record into another, between SQLite and
PostgreSQL either way, in batches, with progress.

The destination is brought to the latest schema and must hold no rows yet, so a copy is never
counted twice; the source is only read. Rows keep their values: ids, times, the JSON text of
bodies and attempts, key revisions (the destination's revision sequence continues after them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from turnout.store.copy_ends import End, open_end
from turnout.store.copy_tables import TABLES
from turnout.store.errors import StoreError
from turnout.store.location import describe

BATCH = 2000
Progress = Callable[[str, int, int], None]  # table, rows copied so far, rows in all


def copy_record(src: str, dst: str, progress: Progress | None = None) -> dict[str, int]:
    """Copy the record at `src` into the empty store at `dst`; rows copied per table."""
    if str(src) == str(dst):
        raise StoreError("the source and the destination are the same store")
    source = open_end(src, write=False)
    try:
        target = open_end(dst, write=True)
        try:
            return _copy(source, target, progress or (lambda *_: None))
        finally:
            target.close()
    finally:
        source.close()


def _copy(source: End, target: End, progress: Progress) -> dict[str, int]:
    for table in TABLES:
        held = target.count(table.name)
        if held:
            raise StoreError(
                f"{describe(target.url)} already holds {held} rows in {table.name}; "
                "copy only into a new, empty store"
            )
    copied: dict[str, int] = {}
    for table in TABLES:
        total = source.count(table.name)
        done = 0
        progress(table.name, 0, total)
        for batch in _batches(source.rows(table), BATCH):
            target.insert(table, batch)
            done += len(batch)
            progress(table.name, done, total)
        copied[table.name] = done
    target.finish()
    return copied


def _batches(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
