"""One writer at a time per cassette folder, across threads, processes and pytest-xdist workers."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks on folders
    fcntl = None  # type: ignore[assignment]

_THREADS = threading.Lock()


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (created if missing). The folder itself is locked,
    not a file beside the cassette, so nothing is left behind and an atomic replace of the
    cassette cannot slip past the lock."""
    folder.mkdir(parents=True, exist_ok=True)
    with _THREADS:
        if fcntl is None:
            yield
            return
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock
