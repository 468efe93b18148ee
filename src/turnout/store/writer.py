"""The record writer: finished runs in on the event loop, batches out on a thread of its own.

The request path only appends to a deque. A full deque drops the record and counts it, never
waits. One run cannot cost the others their records: its row is built so it can be written
(`rows`), and a batch the database refuses is written again row by row. A store that cannot
write (a full disk, a read-only file) drops and counts what it cannot keep, says so once a
minute rather than per batch, and reports it to `/readyz` until a write succeeds again. A
database server that cannot be reached (PostgreSQL restarting) costs nothing taken from the
queue: the batch goes back to its head, the queue holds what arrives up to its bound (the rest
is dropped and counted), and the writer tries again with a growing pause until it is back.

What is particular to one database is its `Sink` (`sqlite_sink`, `pg_sink`).

The thread shares the interpreter lock with the event loop, and building rows holds it: a
flush done in one burst made every request that woke meanwhile wait for it (tens of ms at
p99). So a flush works in slices, each bounded in rows and time and written in its own
transaction, with a real pause after each that lets the event loop take the lock.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.config.schema import Retention, StoreConfig
from turnout.lifecycle.run import Run
from turnout.store.location import is_postgres, postgres_module, sqlite_file
from turnout.store.rows import row_of
from turnout.store.sink import Sink
from turnout.store.sqlite import Recovery

log = logging.getLogger("turnout.store")

LOG_EVERY_S = 60.0
# One slice: at most this many rows, or this long building them, whichever comes first; then
# a pause in which the thread does not hold the interpreter lock.
SLICE_ROWS = 32
SLICE_S = 0.0005
PAUSE_S = 0.0001
# Trying a store that is down again: after this pause, doubling up to the longest.
RETRY_FIRST_S = 0.25
RETRY_LONGEST_S = 5.0


def sink_for(url: str) -> Sink:
    if is_postgres(url):
        return postgres_module("pg_sink").PostgresSink(url)
    from turnout.store.sqlite_sink import SQLiteSink

    return SQLiteSink(sqlite_file(url))


@dataclass(slots=True)
class Failing:
    """The store has not been able to write since `since` (unix seconds)."""

    reason: str
    since: float
    dropped: int = 0  # taken from the queue and not written
    refused_before: int = 0  # the writer's `refused` when the failure began


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
        self.sink = sink_for(url)
        self.path: str | Path = self.sink.location  # for messages; never a password
        self.record_bodies = record_bodies
        self.flush_interval_s = flush_interval_s
        self.queue_size = queue_size
        self.retention = retention if retention is not None else Retention()
        # Each counter has one writing thread: the full queue's on the event loop, the rest here.
        self.refused = 0  # records the full queue turned away
        self.lost = 0  # records taken from the queue that could not be written
        self.written = 0
        self.pruned = 0
        self.failing: Failing | None = None
        self._logged_at = -LOG_EVERY_S
        self._queue: collections.deque[Run] = collections.deque()
        self._held = 0  # runs taken off the queue by the writer thread, not yet written
        self._wake = threading.Event()
        self._flushing = threading.Lock()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._open = False
        self._next_prune = 0.0
        self._retry_s = RETRY_FIRST_S
        self._retry_at = 0.0
        # Consulted before each retention pass: in a fleet, only the leader prunes.
        self.may_prune: Callable[[], bool] = lambda: True
        self.recovery: Recovery | None = None
        # Other processes write this file too (`serve --workers`): a write-ahead log found on
        # open is theirs, not one a crash left.
        self.shared = False

    @classmethod
    def for_store(cls, store: StoreConfig) -> RecordWriter:
        return cls(
            store.url,
            store.record_bodies,
            store.flush_interval_s,
            store.queue_size,
            store.retention,
        )

    @property
    def salvaged(self) -> int:
        """Rows written bare after the database refused them."""
        return self.sink.salvaged

    @property
    def _conn(self) -> Any:
        return getattr(self.sink, "conn", None)

    def check(self) -> None:
        """Raise StoreError, naming the store, unless it can be written."""
        self.sink.check()

    def open(self) -> Recovery:
        recovery = self.sink.open()
        if self.shared and recovery.unclean:  # another worker's write-ahead log, not a crash's
            recovery = dataclasses.replace(recovery, unclean=False)
        self.recovery = recovery
        self._open = True
        self._next_prune = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="turnout-record", daemon=True)
        self._thread.start()
        return self.recovery

    def submit(self, run: Run) -> None:
        # The bound counts what the writer has taken and not yet written, too.
        if len(self._queue) + self._held >= self.queue_size:
            self.refused += 1
            return
        self._queue.append(run)

    @property
    def dropped(self) -> int:
        """Records not kept: turned away by a full queue or not writable."""
        return self.refused + self.lost

    @property
    def pending(self) -> int:
        """Records submitted and not yet written (queued, or in the batch being written)."""
        return len(self._queue) + self._held

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
            f"{self._dropped_since(failing)} records dropped"
        )

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            if self._waiting():
                continue
            self._flush()
            if self.failing is not None:
                self._probe()
            if time.monotonic() >= self._next_prune and self.may_prune():
                more = self.enforce_retention()
                # A long backlog is pruned a slice per flush, so flushes keep their pace.
                self._next_prune = time.monotonic() + (0 if more else self.retention.check_s)
        self._flush()

    def _waiting(self) -> bool:
        """A store that keeps batches while it is down is tried again only after a pause."""
        return self.failing is not None and self.sink.buffers and time.monotonic() < self._retry_at

    def _flush(self) -> None:
        # One batch at a time: a caller of flush() must not return while the writer thread
        # still holds records it took from the queue.
        with self._flushing:
            self._flush_locked()

    def _flush_locked(self) -> None:
        # What was queued when the flush began, so a busy gateway cannot keep one flush going.
        left = len(self._queue)
        runs: list[Run] = []
        rows: list[tuple[Any, ...]] = []
        while left > 0 and self._open:
            more_runs, more_rows = self._slice(left)
            if not more_runs:
                break
            left -= len(more_runs)
            runs += more_runs
            rows += more_rows
            # Rows are built a slice at a time; a sink that writes better in larger statements
            # (a round trip each) takes several slices at once.
            if len(runs) >= self.sink.batch_rows or left <= 0:
                written = self._write(runs, rows)
                runs, rows = [], []
                if not written:
                    return  # the store is down; what is queued waits for it
            if left > 0:
                time.sleep(PAUSE_S)
        if runs:
            self._write(runs, rows)

    def _slice(self, limit: int) -> tuple[list[Run], list[tuple[Any, ...]]]:
        """The next runs off the queue with their rows, as many as one slice allows."""
        runs: list[Run] = []
        rows: list[tuple[Any, ...]] = []
        until = time.perf_counter() + SLICE_S
        while len(runs) < min(limit, SLICE_ROWS) and self._queue:
            self._held += 1  # counted before it leaves the queue: the bound is never exceeded
            run = self._queue.popleft()
            runs.append(run)
            rows.append(row_of(run, self.record_bodies))
            if time.perf_counter() >= until:
                break
        return runs, rows

    def _write(self, runs: list[Run], rows: list[tuple[Any, ...]]) -> bool:
        """Write one slice; False if the store could not be written."""
        try:
            lost = self.sink.write(runs, rows, self.record_bodies)
        except self.sink.failures as exc:
            if self.sink.buffers:
                self._queue.extendleft(reversed(runs))  # kept, in order, for the next try
                self._held -= len(runs)
                self._store_failed(exc, 0)
            else:
                self._held -= len(runs)
                self._store_failed(exc, len(runs))
            return False
        except Exception as exc:  # a bug here must not end the writer thread
            self._held -= len(runs)
            log.exception("store %s: a batch of %d records was lost", self.path, len(runs))
            self._store_failed(exc, len(runs))
            return False
        self._held -= len(runs)
        self.written += len(rows) - lost
        self.lost += lost
        self._recovered()
        return True

    def _dropped_since(self, failing: Failing) -> int:
        """What the failure has cost: what could not be written, and for a store that buffers
        while it is down, what its full queue turned away."""
        refused = self.refused - failing.refused_before if self.sink.buffers else 0
        return failing.dropped + refused

    def _recovered(self) -> None:
        self._retry_s = RETRY_FIRST_S
        if self.failing is not None:
            f, self.failing = self.failing, None
            log.warning(
                "store %s: writing again after %.0f s; %d records were dropped meanwhile",
                self.path,
                time.time() - f.since,
                self._dropped_since(f),
            )

    def _probe(self) -> None:
        """A failing store with nothing queued is tried on its own, so an idle gateway turns
        ready again once the store is back (not ready, it may get no traffic)."""
        with self._flushing:
            if not self._open or self.failing is None or self._queue:
                return
            try:
                self.sink.probe()
            except self.sink.failures as exc:
                self._store_failed(exc, 0)
                return
            self._recovered()

    def _store_failed(self, exc: BaseException, lost: int) -> None:
        self.lost += lost
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if self.failing is None:
            self.failing = Failing(reason, time.time(), refused_before=self.refused)
        self.failing.reason = reason
        self.failing.dropped += lost
        self._retry_at = time.monotonic() + self._retry_s
        self._retry_s = min(self._retry_s * 2, RETRY_LONGEST_S)
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            log.error(
                "store %s: records cannot be written (%s); %d dropped so far. Serving goes on; "
                "this is logged once a minute while it lasts",
                self.path,
                reason,
                self._dropped_since(self.failing),
            )

    def enforce_retention(self) -> bool:
        """Delete a slice of what `store.retention` no longer keeps; True if more is left."""
        with self._flushing:
            if not self._open or self.failing is not None:
                return False
            try:
                pruned = self.sink.prune(self.retention, time.time())
            except self.sink.failures as exc:
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
            if not self._open:
                return False
            return self.sink.erase_bodies(request_id)

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if not self._open:
            return
        self._flush()
        with self._flushing:
            left = len(self._queue)
            if left:  # the store stayed down to the end
                self._queue.clear()
                self.lost += left
                if self.failing is not None:
                    self.failing.dropped += left
            self._open = False
            self.sink.close()
        if self.failing is not None:
            log.error(
                "store %s: closed while it could not write (%s); %d records were dropped",
                self.path,
                self.failing.reason,
                self._dropped_since(self.failing),
            )
