"""Only `turnout.store` talks to a database: every other package goes through its API, so the
database behind it can change without touching them."""

from __future__ import annotations

import ast
from pathlib import Path

import turnout

SRC = Path(turnout.__file__).parent
STORE = SRC / "store"
DRIVERS = frozenset(
    {"sqlite3", "aiosqlite", "apsw", "psycopg", "psycopg2", "psycopg_pool", "asyncpg"}
    | {"sqlalchemy"}
)
# The store's database-specific modules: what the rest reaches only through the store's API.
_MACHINERY = ("turnout.store.sqlite", "turnout.store.pg_")
SQL_CALLS = frozenset({"execute", "executemany", "executescript"})


def offences(source: str) -> list[str]:
    """Where a module imports a database driver or the store's SQLite machinery, or hands a
    statement to `.execute()` (a Redis pipeline's bare `.execute()` is not a database call)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_CALLS
            and (node.args or node.keywords)
        ):
            found.append(f"line {node.lineno}: .{node.func.attr}(...)")
            continue
        else:
            continue
        bad = [m for m in modules if m.split(".")[0] in DRIVERS or m.startswith(_MACHINERY)]
        if bad:
            found.append(f"line {node.lineno}: import {bad[0]}")
    return found


def test_no_module_outside_the_store_imports_a_database_driver_or_runs_sql() -> None:
    modules = [p for p in SRC.rglob("*.py") if STORE not in p.parents]
    assert len(modules) > 100  # the whole source tree, not an empty glob
    bad = {
        str(p.relative_to(SRC)): hits
        for p in modules
        if (hits := offences(p.read_text(encoding="utf-8")))
    }
    assert bad == {}


def test_the_scan_catches_each_way_past_the_store() -> None:
    source = """
import sqlite3
import psycopg.rows
from sqlite3 import connect
from psycopg_pool import ConnectionPool
from turnout.store.sqlite_read import SQLiteReader
from turnout.store.pg_read import PostgresReader
from turnout.store import pg_pool
conn.execute("SELECT 1")
cursor.executemany(sql, rows)
"""
    assert len(offences(source)) == 9


def test_the_scan_lets_the_store_api_and_a_redis_pipeline_through() -> None:
    source = """
from turnout.store.read import open_reader
from turnout.store.writer import RecordWriter
import sqlite_utils_of_our_own as nothing
await pipe.execute()
"""
    assert offences(source) == []
