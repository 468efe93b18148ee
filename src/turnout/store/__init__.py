"""The request record, and the one API every package reads and writes it through.

`open_reader` reads recorded requests and migration events, `open_event_log` appends migration
events, `open_fingerprints` keeps fingerprint history; `RecordWriter` (in `writer`) takes runs
off the request path. Which database stands behind a URL (`sqlite:///PATH`, or
`postgresql://…` with the `postgres` extra) is this package's business alone.
"""

from turnout.store.errors import NoRecordStore, RecordNotFound, StoreError
from turnout.store.events import MigrationEvent, MigrationEventLog, open_event_log
from turnout.store.fingerprints import (
    AlarmRecord,
    CheckRecord,
    FingerprintTables,
    open_fingerprints,
)
from turnout.store.read import Cursor, RecordReader, Request, ShadowTotal, open_reader

__all__ = [
    "AlarmRecord",
    "CheckRecord",
    "Cursor",
    "FingerprintTables",
    "MigrationEvent",
    "MigrationEventLog",
    "NoRecordStore",
    "RecordNotFound",
    "RecordReader",
    "Request",
    "ShadowTotal",
    "StoreError",
    "open_event_log",
    "open_fingerprints",
    "open_reader",
]
