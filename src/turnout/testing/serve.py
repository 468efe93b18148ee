"""`turnout serve --record DIR [--cassette-mode MODE]`: a whole gateway session on one cassette."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from turnout.backends.base import Backend
from turnout.testing.cassette import Cassette, CassetteError, Mode
from turnout.testing.inprocess import backend_wrapper

log = logging.getLogger("turnout.testing")

CASSETTE_FILE = "cassette.json"


def cassette_wrapper(record: str | None, mode: str | None) -> Callable[[str, Backend], Backend]:
    """`wrap_backend` for the served gateway. Every recorded call is written at once (atomically),
    so a gateway that is killed keeps what it recorded."""
    if not record:
        raise SystemExit("error: --cassette-mode needs --record DIR (where the cassette lives)")
    path = Path(record)
    if path.suffix != ".json":
        path = path / CASSETTE_FILE
    try:
        cassette = Cassette.load(path, Mode(mode or Mode.NEW_EPISODES), autosave=True)
    except CassetteError as exc:
        raise SystemExit(f"error: {exc}") from None
    log.info(
        "cassette %s, mode %s: %d recorded calls", path, cassette.mode.value, len(cassette.recorded)
    )
    return backend_wrapper(cassette)
