"""What the record writer needs of a database: `Sink`, one implementation per database.

The writer owns the queue, the slicing, the counting and the logging; a sink writes a batch,
says what it could not keep and removes what retention no longer keeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from turnout.config.schema import Retention
from turnout.lifecycle.run import Run
from turnout.store.retention import Pruned
from turnout.store.sqlite import Recovery


class Sink(Protocol):
    location: str | Path  # for messages: a path, or a URL without its password
    # Exceptions meaning the store cannot write now (not that one row is unwritable).
    failures: tuple[type[BaseException], ...]
    # True: a batch that could not be written is kept to try again (a server that comes back);
    # False: it is dropped and counted (a full disk frees no space by waiting).
    buffers: bool
    # Rows the writer gathers (a slice at a time) for one `write`.
    batch_rows: int

    def check(self) -> None:
        """StoreError, naming the store, unless it can be written."""
        ...

    def open(self) -> Recovery: ...

    def write(self, runs: list[Run], rows: list[tuple[Any, ...]], record_bodies: str) -> int:
        """Write one batch; how many of its records could not be written at all. A row the
        database refuses is written bare (`rows.bare_row`), counted in `salvaged`."""
        ...

    salvaged: int

    def probe(self) -> None:
        """A cheap write or round trip: raises one of `failures` while the store is down."""
        ...

    def prune(self, retention: Retention, now: float) -> Pruned: ...

    def erase_bodies(self, request_id: str) -> bool: ...

    def close(self) -> None:
        """Close, with nothing left to write."""
        ...
