"""The record writer: finished runs in on the event loop, batches out on a thread of its own.

The request path only appends to a deque. A full deque drops the record and counts it, never
waits. One run cannot cost the others their records: its row is built so it can be written
(`rows`), and a batch the database refuses is written again row by row. A store that cannot
write (a full disk, a read-only file) drops and counts what it cannot keep, says so once a
minute rather than per batch, and reports it to `/readyz` until a write succeeds again.

The thread shares the interpreter lock with the event loop, and building rows holds it: a
flush done in one burst made every request that woke meanwhile wait for it (tens of ms at
p99). So a flush works in slices, each bounded in rows and time and written in its own
transaction, with a real pause after each that lets the event loop take the lock.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from turnout.config.schema import Retention, StoreConfig
from turnout.lifecycle.run import Run
from turnout.store.errors import StoreError
from turnout.store.retention import prune
from turnout.store.rows import bare_row, row_of
from turnout.store.sqlite import (
    ERASE_BODIES,
    INSERT,
    Recovery,
    check_writable,
    open_for_writing,
    sqlite_path,
)

log = logging.getLogger("turnout.store")

LOG_EVERY_S = 60.0
# One slice: at most this many rows, or this long building them, whichever comes first; then
# a pause in which the thread does not hold the interpreter lock.
SLICE_ROWS = 32
SLICE_S = 0.0005
PAUSE_S = 0.0001
# What one row can make the database refuse; anything else is the store's own failure.
_ROW_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    OverflowError,
    ValueError,
    TypeError,
)


@dataclass(slots=True)
class Failing:
    """The store has not been able to write since `since` (unix seconds)."""

    reason: str
    since: float
    dropped: int = 0


class RecordWriter:
    """Takes finished runs on the event loop; a thread writes them in batches."""

    def __init__(
        self,
        url: str,
        record_bodies: str,
        flush_interval_s: float,
        queue_size: int,
        retention: Retention | None = None,
    ):
        self.path = sqlite_path(url)
        self.record_bodies = record_bodies
        self.flush_interval_s = flush_interval_s
        self.queue_size = queue_size
        self.retention = retention if retention is not None else Retention()
        # Each counter has one writing thread: the full queue's on the event loop, the rest here.
        self.refused = 0  # records the full queue turned away
        self.lost = 0  # records taken from the queue that could not be written
        self.written = 0
        self.salvaged = 0  # rows written bare after the database refused them
        self.pruned = 0
        self.failing: Failing | None = None
        self._logged_at = -LOG_EVERY_S
        self._queue: collections.deque[Run] = collections.deque()
        self._wake = threading.Event()
        self._flushing = threading.Lock()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._next_prune = 0.0
        # Consulted before each retention pass: in a fleet, only the leader prunes.
        self.may_prune: Callable[[], bool] = lambda: True
        self.recovery: Recovery | None = None

    @classmethod
    def for_store(cls, store: StoreConfig) -> RecordWriter:
        return cls(
            store.url,
            store.record_bodies,
            store.flush_interval_s,
            store.queue_size,
            store.retention,
        )

    def check(self) -> None:
        """Raise StoreError, naming the path, unless the store's file can be written."""
        check_writable(self.path)

    def open(self) -> Recovery:
        wal = self.path.with_name(self.path.name + "-wal")
        wal_bytes = wal.stat().st_size if wal.exists() else 0
        self._conn = open_for_writing(self.path)
        check = self._conn.execute("PRAGMA quick_check").fetchone()[0]
        records = self._conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        self.recovery = Recovery(wal_bytes > 0, wal_bytes, records, check == "ok", check)
        self._next_prune = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="turnout-record", daemon=True)
        self._thread.start()
        return self.recovery

    def submit(self, run: Run) -> None:
        if len(self._queue) >= self.queue_size:
            self.refused += 1
            return
        self._queue.append(run)

    @property
    def dropped(self) -> int:
        """Records not kept: turned away by a full queue or not writable."""
        return self.refused + self.lost

    @property
    def pending(self) -> int:
        return len(self._queue)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def problem(self) -> str | None:
        """Why records are not being kept, in words for `/readyz`; None while they are."""
        if not self.alive():
            return f"the record writer for {self.path} is not running"
        failing = self.failing
        if failing is None:
            return None
        since = dt.datetime.fromtimestamp(failing.since, dt.UTC).isoformat(timespec="seconds")
        return (
            f"the record store {self.path} cannot be written since {since} ({failing.reason}); "
            f"{failing.dropped} records dropped"
        )

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self._flush()
            if self.failing is not None:
                self._probe()
            if time.monotonic() >= self._next_prune and self.may_prune():
                more = self.enforce_retention()
                # A long backlog is pruned a slice per flush, so flushes keep their pace.
                self._next_prune = time.monotonic() + (0 if more else self.retention.check_s)
        self._flush()

    def _flush(self) -> None:
        # One batch at a time: a caller of flush() must not return while the writer thread
        # still holds records it took from the queue.
        with self._flushing:
            self._flush_locked()

    def _flush_locked(self) -> None:
        # What was queued when the flush began, so a busy gateway cannot keep one flush going.
        left = len(self._queue)
        while left > 0 and self._conn is not None:
            runs, rows = self._slice(left)
            if not runs:
                return
            left -= len(runs)
            self._write(self._conn, runs, rows)
            if left > 0:
                time.sleep(PAUSE_S)

    def _slice(self, limit: int) -> tuple[list[Run], list[tuple[Any, ...]]]:
        """The next runs off the queue with their rows, as many as one slice allows."""
        runs: list[Run] = []
        rows: list[tuple[Any, ...]] = []
        until = time.perf_counter() + SLICE_S
        while len(runs) < min(limit, SLICE_ROWS) and self._queue:
            run = self._queue.popleft()
            runs.append(run)
            rows.append(row_of(run, self.record_bodies))
            if time.perf_counter() >= until:
                break
        return runs, rows

    def _write(
        self, conn: sqlite3.Connection, runs: list[Run], rows: list[tuple[Any, ...]]
    ) -> None:
        try:
            lost = self._insert(conn, runs, rows)
        except (sqlite3.Error, OSError) as exc:
            self._store_failed(exc, len(runs))
            return
        except Exception as exc:  # a bug here must not end the writer thread
            log.exception("store %s: a batch of %d records was lost", self.path, len(runs))
            self._store_failed(exc, len(runs))
            return
        self.written += len(rows) - lost
        self.lost += lost
        self._recovered()

    def _recovered(self) -> None:
        if self.failing is not None:
            f, self.failing = self.failing, None
            log.warning(
                "store %s: writing again after %.0f s; %d records were dropped meanwhile",
                self.path,
                time.time() - f.since,
                f.dropped,
            )

    def _probe(self) -> None:
        """A failing store with nothing queued is tried with a one-page write, so an idle
        gateway turns ready again once space is back (not ready, it may get no traffic)."""
        with self._flushing:
            if self._conn is None or self.failing is None or self._queue:
                return
            try:
                version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
                self._conn.execute(f"PRAGMA user_version={version}")
            except (sqlite3.Error, OSError) as exc:
                self._store_failed(exc, 0)
                return
            self._recovered()

    def _insert(
        self, conn: sqlite3.Connection, batch: list[Run], rows: list[tuple[Any, ...]]
    ) -> int:
        """Write the batch; returns how many of its records could not be written at all."""
        try:
            with conn:
                conn.execute("BEGIN")
                conn.executemany(INSERT, rows)
            return 0
        except _ROW_ERRORS:
            pass  # one row the database refused: find it below, keep the others
        lost = 0
        with conn:
            conn.execute("BEGIN")
            for run, row in zip(batch, rows, strict=True):
                try:
                    conn.execute(INSERT, row)
                except _ROW_ERRORS as exc:
                    try:
                        conn.execute(INSERT, bare_row(run, self.record_bodies, exc))
                        self.salvaged += 1
                    except _ROW_ERRORS as again:
                        lost += 1
                        log.warning("store %s: record %r lost (%s)", self.path, run.id, again)
        return lost

    def _store_failed(self, exc: BaseException, lost: int) -> None:
        self.lost += lost
        reason = f"{type(exc).__name__}: {exc}"
        if self.failing is None:
            self.failing = Failing(reason, time.time())
        self.failing.reason = reason
        self.failing.dropped += lost
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            log.error(
                "store %s: records cannot be written (%s); %d dropped so far. Serving goes on; "
                "this is logged once a minute while it lasts",
                self.path,
                reason,
                self.failing.dropped,
            )

    def enforce_retention(self) -> bool:
        """Delete a slice of what `store.retention` no longer keeps; True if more is left."""
        with self._flushing:
            if self._conn is None or self.failing is not None:
                return False
            try:
                pruned = prune(self._conn, self.retention, time.time())
            except sqlite3.Error as exc:
                log.warning("store %s: retention could not run (%s)", self.path, exc)
                return False
        if pruned.records:
            self.pruned += pruned.records
            log.info(
                "store %s: retention removed %d records (%d by age, %d by size); "
                "%.1f MiB in use, was %.1f MiB",
                self.path,
                pruned.records,
                pruned.by_age,
                pruned.by_size,
                pruned.bytes_after / 2**20,
                pruned.bytes_before / 2**20,
            )
        return pruned.more

    def flush(self) -> None:
        """Write everything queued now (tests, shutdown, a read that must see a run)."""
        self._flush()

    def erase_bodies(self, request_id: str) -> bool:
        """Remove one recorded request's bodies, keeping its run; False if it is not recorded.

        Blocking: call it off the event loop. What is queued is written first, so a request
        answered a moment ago is erased too.
        """
        with self._flushing:
            self._flush_locked()
            if self._conn is None:
                return False
            try:
                with self._conn:
                    return self._conn.execute(ERASE_BODIES, (request_id,)).rowcount > 0
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path}: cannot erase {request_id!r}: {exc}") from None

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._conn is None:
            return
        self._flush()
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning(
                "store %s: the write-ahead log stays for the next start (%s)", self.path, exc
            )
        self._conn.close()
        self._conn = None
        if self.failing is not None:
            log.error(
                "store %s: closed while it could not write (%s); %d records were dropped",
                self.path,
                self.failing.reason,
                self.failing.dropped,
            )
