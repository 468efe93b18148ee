"""A store that cannot write: the gateway keeps serving, says so on /readyz and once in the log,
recovers when space returns, and shuts down cleanly on a full disk. A store it cannot open at
all stops `turnout serve` before it starts, with the path in one plain line.

The disk is a real one: a small tmpfs mounted for the test (CI runs as root). Without the right
to mount, the gateway runs under RLIMIT_FSIZE instead, which fails its writes the same way but
cannot give the space back, so the recovery steps need the mount.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from upstream import ScriptedUpstream, Step, free_port

DISK_BYTES = 4 * 1024 * 1024
FSIZE_LIMIT = 2 * 1024 * 1024


class Disk:
    """A small filesystem the test can fill and empty again."""

    def __init__(self, root: Path, mounted: bool) -> None:
        self.root = root
        self.mounted = mounted
        self._filler = root / "filler"

    def fill(self) -> None:
        if not self.mounted:
            return  # under RLIMIT_FSIZE the records fill the store file themselves
        # The records may have filled it already: then even creating the filler fails.
        with contextlib.suppress(OSError), self._filler.open("ab") as f:
            chunk = b"\0" * 65536
            while True:
                f.write(chunk)
                f.flush()
        with contextlib.suppress(OSError), self._filler.open("ab") as f:  # the last few bytes
            while True:
                f.write(b"\0")
                f.flush()

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    return done.returncode == 0


@contextlib.contextmanager
def small_disk(tmp_path: Path) -> Iterator[Disk]:
    root = tmp_path / "disk"
    mounted = _mount_tmpfs(root, f"size={DISK_BYTES}")
    try:
        yield Disk(root, mounted)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(root)], check=False)


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


def serve(config: Path, port: int, log: Path, *, limited: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "turnout", "serve", "--config", str(config), "--port", str(port)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=_limit_file_size if limited else None,
    )


def wait_for(check: object, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen; gateway log:\n{log.read_text()}")


def recorded(db: Path, rid: str) -> bool:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT 1 FROM requests WHERE id = ?", (rid,)).fetchone() is not None
    finally:
        conn.close()


def test_a_full_disk_keeps_serving_says_why_on_readyz_and_recovers(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    with ScriptedUpstream(default=Step()) as up, small_disk(tmp_path) as disk:
        db = disk.root / "record.db"
        config = tmp_path / "turnout.yaml"
        config.write_text(
            f"""
store: {{url: "sqlite:///{db}", flush_interval_s: 0.02}}
deployments:
  a: {{kind: openai, base_url: "{up.base_url}", model: m}}
models:
  assistant: {{deployments: [a]}}
"""
        )
        port = free_port()
        proc = serve(config, port, log, limited=not disk.mounted)
        url = f"http://127.0.0.1:{port}"
        http = httpx.Client(base_url=url, timeout=10)
        big = "x" * 20_000

        def ask() -> httpx.Response:
            body = {"model": "assistant", "messages": [{"role": "user", "content": big}]}
            return http.post("/v1/chat/completions", json=body)

        def ready() -> httpx.Response:
            return http.get("/readyz")

        try:
            wait_for(lambda: ready().status_code == 200, "start-up", log)
            first = ask()
            assert first.status_code == 200
            wait_for(lambda: recorded(db, first.headers["x-turnout-request-id"]), "a record", log)

            disk.fill()
            answered = 0
            while (state := ready()).status_code == 200:  # until a batch has failed
                assert ask().status_code == 200
                answered += 1
                assert answered < 2000, "the store never failed to write"
            problems = state.json()["problems"]
            for _ in range(20):  # serving goes on while nothing can be recorded
                assert ask().status_code == 200
            assert len(problems) == 1
            assert str(db) in problems[0]
            assert "cannot be written since" in problems[0]
            assert "full" in problems[0] or "too large" in problems[0]

            text = log.read_text()
            assert text.count("records cannot be written") == 1  # once a minute, not per batch
            assert "Traceback" not in text

            if disk.mounted:
                disk.free()
                wait_for(lambda: ready().status_code == 200, "recovery", log)
                after = ask()
                assert after.status_code == 200
                rid = after.headers["x-turnout-request-id"]
                wait_for(lambda: recorded(db, rid), "a record after recovery", log)
                assert "writing again after" in log.read_text()

                disk.fill()
                while ready().status_code == 200:
                    assert ask().status_code == 200
            proc.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal once its shutdown is done: -SIGTERM is a clean end.
            assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
            text = log.read_text()
            assert "Application shutdown complete" in text
            assert "closed while it could not write" in text
            assert "Traceback" not in text
        finally:
            http.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _unwritable_store(tmp_path: Path) -> Path:
    """A store path no one may write: on a read-only mount, else below a regular file."""
    ro = tmp_path / "ro"
    if _mount_tmpfs(ro, "ro,size=64k"):
        return ro / "record.db"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / "record.db"


def test_an_unwritable_store_stops_serve_with_the_path_and_no_traceback(tmp_path: Path) -> None:
    db = _unwritable_store(tmp_path)
    config = tmp_path / "turnout.yaml"
    config.write_text(
        f"""
store: {{url: "sqlite:///{db}"}}
deployments:
  a: {{kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}}
models:
  assistant: {{deployments: [a]}}
"""
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "turnout", "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        if db.parent.name == "ro":
            subprocess.run(["umount", "-l", str(db.parent)], check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert lines == [lines[0]] and str(db) in lines[0], done.stderr
    assert any(word in lines[0] for word in ("Read-only", "readonly", "Not a directory"))
