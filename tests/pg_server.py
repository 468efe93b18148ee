"""A real PostgreSQL (Debian's) in a throwaway cluster: `initdb` into a temp dir, `postgres` on
a free loopback port, stopped and removed by the tests that start it.

PostgreSQL refuses to run as root, so under root (CI) the cluster belongs to `nobody`.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

USER = "turnout"
PASSWORD = "pg-test-pw-7f3a"  # the tests check that no record, log or error quotes it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binaries() -> Path:
    """The folder of `initdb` and `postgres`: on PATH, else where Debian puts them."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists():
            return Path(folder)
    raise RuntimeError(
        "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): "
        "apt-get install -y postgresql"
    )


class PostgresServer:
    """One cluster; `url(db)` names a database in it, `create_database()` makes a fresh one."""

    def __init__(self, durable: bool = False) -> None:
        """`durable`: commits reach the disk, as in production (benchmarks); else the tests'
        speed (no fsync)."""
        self.durable = durable
        self.bin = binaries()
        self.root = Path(tempfile.mkdtemp(prefix="turnout-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_root:
            for path in (self.root, pwfile):
                os.chown(path, 65534, 65534)
        self._run(
            "initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}", "-E", "UTF8",
            "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
        )  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def _user(self) -> dict[str, object]:
        return {"user": 65534, "group": 65534, "extra_groups": []} if self._as_root else {}

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin / tool), *args], capture_output=True, check=False, **self._user()
        )  # type: ignore[call-overload]
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def start(self) -> None:
        """Start (or start again, on the same port and data) and wait until it accepts."""
        log = (self.root / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ],
            stdout=log,
            stderr=log,
            **self._user(),
        )  # type: ignore[call-overload]
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = (self.root / "postgres.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"postgres did not start:\n{tail}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as in an outage."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=30)
        self.proc = None

    def url(self, db: str) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{db}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
