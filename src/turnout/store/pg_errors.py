"""psycopg's errors stop at the store's edge: callers see StoreError, naming the database
(never its password)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool

from turnout.store.errors import StoreError
from turnout.store.location import describe, scrub

# What says the database cannot be reached now, rather than that a statement is wrong.
UNREACHABLE = (psycopg.OperationalError, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed)


def reason(exc: BaseException, url: str) -> str:
    text = str(exc).strip().splitlines()
    return scrub(f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "), url)


@contextmanager
def translated(url: str) -> Iterator[None]:
    try:
        yield
    except (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
        raise StoreError(f"record store {describe(url)}: {reason(exc, url)}") from None
