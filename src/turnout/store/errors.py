"""What can go wrong reading or writing the record, in words that name the store, never a driver."""

from __future__ import annotations

from turnout.errors import TurnoutError


class StoreError(TurnoutError):
    """The record store cannot be used; the message names its path."""


class NoRecordStore(StoreError, FileNotFoundError):
    """No store at the place named: nothing has been recorded there yet."""


class RecordNotFound(TurnoutError, LookupError):
    """No request with that id (or the prefix names more than one)."""
