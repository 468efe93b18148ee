"""sqlite3's errors stop at the store's edge: callers see StoreError, naming the file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from turnout.store.errors import StoreError


@contextmanager
def translated(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"record store {path}: {exc}") from None
