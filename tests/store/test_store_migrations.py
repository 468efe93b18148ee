"""The record's schema is versioned on both stores: migrations are applied once, in order, at
start-up and by `turnout store migrate`, and a store from before versioning is adopted."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from pg_server import PASSWORD, PostgresServer

from turnout.cli import main
from turnout.lifecycle.run import Run
from turnout.store import sqlite, sqlite_events, sqlite_feedback, sqlite_fingerprints, sqlite_keys
from turnout.store.errors import StoreError
from turnout.store.read import open_reader
from turnout.store.rows import row_of
from turnout.store.versions import migrate
from turnout.store.writer import RecordWriter


def unversioned_store(path: Path, runs: int) -> None:
    """A record as the release before versioning left it: its tables, no schema_version."""
    conn = sqlite3.connect(path, isolation_level=None)
    for script in (sqlite.SCHEMA, sqlite_events.SCHEMA, sqlite_feedback.SCHEMA):
        conn.executescript(script)
    for script in (sqlite_keys.SCHEMA, sqlite_fingerprints.SCHEMA):
        conn.executescript(script)
    for i in range(runs):
        run = Run(id=f"old{i}", model="assistant", operation="chat", started=time.time() - i)
        conn.execute(sqlite.INSERT, row_of(run, "full"))
    conn.close()


def test_an_unversioned_sqlite_record_is_adopted_as_version_1_without_loss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    unversioned_store(path, runs=3)
    assert main(["store", "migrate", "--url", f"sqlite:///{path}"]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"{path}: applied 1: the record's tables (adopted the unversioned store)\n"
        f"{path}: applied 2: decisions fenced by the leader's term\n"
    )
    with open_reader(f"sqlite:///{path}") as reader:
        assert sorted(r["id"] for r in reader.requests()) == ["old0", "old1", "old2"]
    assert main(["store", "migrate", "--url", f"sqlite:///{path}"]) == 0
    assert capsys.readouterr().out == f"{path}: the schema is up to date\n"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version, name FROM schema_version").fetchall() == [
            (1, "the record's tables"),
            (2, "decisions fenced by the leader's term"),
        ]


def test_a_new_postgres_database_gets_every_migration_and_the_password_is_never_printed(
    pg_server: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_server.create_database()
    assert main(["store", "migrate", "--url", url]) == 0
    first = capsys.readouterr().out
    assert main(["store", "migrate", "--url", url]) == 0
    second = capsys.readouterr().out
    where = url.replace(f":{PASSWORD}", "")
    assert first == (
        f"{where}: applied 1: the record's tables (created)\n"
        f"{where}: applied 2: decisions fenced by the leader's term\n"
    )
    assert second == f"{where}: the schema is up to date\n"
    assert PASSWORD not in first + second
    with psycopg.connect(url) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'requests'").fetchone()
        assert kind == ("p",)  # partitioned


def test_the_writer_applies_the_migrations_when_the_gateway_starts(
    new_store: Callable[[], str],
) -> None:
    url = new_store()
    writer = RecordWriter(url, "full", 60, 100)
    writer.open()
    writer.close()
    assert migrate(url) == []  # nothing left to apply


def test_a_store_from_a_newer_turnout_is_refused_naming_the_versions(
    new_store: Callable[[], str],
) -> None:
    url = new_store()
    migrate(url)
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("INSERT INTO schema_version VALUES (99, 'from the future', 0)")
    else:
        with psycopg.connect(url) as conn:
            conn.execute("INSERT INTO schema_version VALUES (99, 'from the future', 0)")
    with pytest.raises(StoreError, match="at version 99, written by a newer turnout") as caught:
        RecordWriter(url, "full", 60, 100).open()
    assert PASSWORD not in str(caught.value)


def test_a_postgres_server_that_cannot_be_reached_is_a_store_error_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket_free_port() as port:
        url = f"postgresql://turnout:{PASSWORD}@127.0.0.1:{port}/nothing"
        assert main(["store", "migrate", "--url", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: record store postgresql://turnout@127.0.0.1:{port}/nothing")
    assert PASSWORD not in err


class socket_free_port:
    """A loopback port nothing listens on, held bound (not listening) for the test."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_reading_a_postgres_database_that_does_not_exist_is_no_record_store(
    pg_server: PostgresServer,
) -> None:
    from turnout.store.errors import NoRecordStore

    url = pg_server.url("never_created")
    with pytest.raises(NoRecordStore, match="no record store at postgresql://turnout@") as caught:
        open_reader(url)
    assert PASSWORD not in str(caught.value)


def test_a_new_postgres_database_reads_as_empty_and_reading_creates_nothing(
    pg_server: PostgresServer,
) -> None:
    url = pg_server.create_database()
    with open_reader(url) as reader:
        assert reader.requests() == [] and reader.migration_events() == []
        assert reader.shadow_totals() == [] and reader.feedback() == []
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('requests')").fetchone() == (None,)
