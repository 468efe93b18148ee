"""One connection pool per PostgreSQL URL in a process, shared by the writer, the readers and
the keys, events, feedback and fingerprint tables; closed when its last user lets go.

Connections are checked when taken, so one cut by a restart of the server is replaced, not
handed out; while the server is away, taking one fails after a timeout instead of hanging.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

from turnout.store.pg_errors import translated
from turnout.store.pg_schema import migrate

MAX_CONNECTIONS = 8
CONNECT_TIMEOUT_S = 5

_lock = threading.Lock()
_pools: dict[str, tuple[ConnectionPool, int]] = {}
_migrated: set[str] = set()


def _configure(conn: psycopg.Connection) -> None:
    set_json_loads(orjson.loads, conn)
    conn.autocommit = True


def acquire(url: str, *, write: bool = True) -> ConnectionPool:
    """The pool of `url`, opened on first use; `release` it after. A writer's first use brings
    the schema up to date (a reader's does not: it may hold a role that cannot)."""
    with _lock:
        pool, users = _pools.get(url, (None, 0))
        if pool is None:
            pool = ConnectionPool(
                url,
                min_size=1,
                max_size=MAX_CONNECTIONS,
                kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "turnout"},
                configure=_configure,
                check=ConnectionPool.check_connection,
                open=False,
                name="turnout-store",
            )
            with translated(url):
                # One plain connection first: a pool only says it timed out, libpq says why
                # (refused, no such database, authentication failed).
                psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
                try:
                    pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
                except BaseException:
                    pool.close()
                    raise
        if write and url not in _migrated:
            try:
                with translated(url), pool.connection() as conn:
                    migrate(conn)
            except BaseException:
                if users == 0:
                    pool.close()
                raise
            _migrated.add(url)
        _pools[url] = (pool, users + 1)
        return pool


def release(url: str) -> None:
    with _lock:
        pool, users = _pools.get(url, (None, 0))
        if pool is None:
            return
        if users > 1:
            _pools[url] = (pool, users - 1)
            return
        del _pools[url]
        _migrated.discard(url)
    pool.close()


@contextmanager
def connection(
    pool: ConnectionPool, url: str, timeout: float = 10.0
) -> Iterator[psycopg.Connection]:
    with translated(url), pool.connection(timeout=timeout) as conn:
        yield conn
