"""A throwaway PostgreSQL cluster for a benchmark: `initdb` into a temp dir, `postgres` on a free
loopback port, a fresh database on demand, everything removed at `destroy()`.

Commits are durable (fsync on), as in production. PostgreSQL refuses to run as root, so under
root the cluster belongs to `nobody`.
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
from typing import Any

import psycopg

USER = "turnout"
NOBODY = 65534


def binaries() -> Path:
    """The folder of `initdb` and `postgres`: on PATH, else where Debian puts them."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists():
            return Path(folder)
    raise RuntimeError("no initdb on PATH or in /usr/lib/postgresql/*/bin: install postgresql")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self) -> None:
        self.bin = binaries()
        self.root = Path(tempfile.mkdtemp(prefix="turnout-bench-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            os.chown(self.root, NOBODY, NOBODY)
        self.proc: subprocess.Popen[bytes] | None = None
        done = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "-E", "UTF8",
             "--no-locale", "--auth=trust"],
            capture_output=True, check=False, **self._user(),
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def _user(self) -> dict[str, Any]:
        return {"user": NOBODY, "group": NOBODY, "extra_groups": []} if self.as_root else {}

    def start(self) -> None:
        log = (self.root / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-k", str(self.root), "-c", "listen_addresses=127.0.0.1",
             "-c", "max_connections=300"],
            stdout=log, stderr=log, start_new_session=True, **self._user(),
        )  # fmt: skip
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
                time.sleep(0.1)

    def url(self, db: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{db}"

    def create_database(self, prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: cuts open connections
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)
