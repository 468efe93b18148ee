"""What `turnout serve --workers N` settles before any worker starts: refusals (said once), the
flag over the config key, and what each worker would decide alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from redis_server import RedisServer
from upstream import free_port
from workers_helpers import write_config

UPSTREAM = "http://127.0.0.1:9/v1"  # never called: nothing here gets as far as a request


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "turnout", "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_more_than_one_worker_without_shared_state_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, UPSTREAM, None)
    done = _serve("--config", str(config), "--workers", "2", "--port", "0")
    assert done.returncode == 2
    assert "--workers 2 needs shared state: set state.url" in done.stderr
    assert "2x" in done.stderr  # why: each worker would let its own cap through
    assert "worker 0" not in done.stderr


def test_server_workers_in_the_config_is_refused_alike(tmp_path: Path) -> None:
    config = write_config(tmp_path, UPSTREAM, None)
    config.write_text(config.read_text() + "server: {workers: 3}\n")
    done = _serve("--config", str(config), "--port", "0")
    assert done.returncode == 2
    assert "--workers 3 needs shared state" in done.stderr


def test_a_bad_config_is_reported_once_not_once_per_worker(tmp_path: Path) -> None:
    config = write_config(tmp_path, UPSTREAM, "redis://127.0.0.1:9/0")
    config.write_text(config.read_text().replace("model: m}", "model: m, timeouts: soon}"))
    done = _serve("--config", str(config), "--workers", "4", "--port", "0")
    assert done.returncode == 2
    assert done.stderr.count("error:") == 1
    assert "deployments.a.timeouts" in done.stderr
    assert "starting" not in done.stderr


def test_workers_must_be_a_positive_number(tmp_path: Path) -> None:
    done = _serve("--workers", "0")
    assert done.returncode == 2
    assert "expected a whole number ≥ 1, got '0'" in done.stderr


def test_a_port_taken_by_another_program_is_one_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        redis = RedisServer(tmp_path / "redis")
        try:
            config = write_config(tmp_path, UPSTREAM, redis.url)
            done = _serve("--config", str(config), "--workers", "2", "--port", str(port))
        finally:
            redis.stop()
    assert done.returncode == 1
    assert done.stderr.count("error:") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_a_worker_that_cannot_start_stops_the_group_with_its_error_once(tmp_path: Path) -> None:
    """A failure only a starting gateway meets (a record file that is not a database) ends the
    group: worker 0 starts alone, so its error is printed once and no other worker starts."""
    config = write_config(tmp_path, UPSTREAM, "redis://127.0.0.1:9/0")
    (tmp_path / "record.db").write_bytes(b"not a database, " * 512)
    done = _serve("--config", str(config), "--workers", "2", "--port", "0")
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("start-up failed") == 1
    assert "record.db: cannot be opened: file is not a database" in done.stderr
    assert "worker 0 failed to start 1 time(s) in a row" in done.stderr
    assert "[worker 1]" not in done.stderr


def test_what_each_worker_would_decide_alone_is_said_at_start(tmp_path: Path) -> None:
    from turnout.config import load_config
    from turnout.server.workers import caveats

    config = load_config(str(write_config(tmp_path, UPSTREAM, "redis://127.0.0.1:9/0")))
    assert caveats(config, "none", 4) == []
    assert caveats(config, "keys", 4) == []  # key limits are counted in Redis across workers


def test_the_workers_flag_wins_over_the_config_key(tmp_path: Path) -> None:
    from upstream import ScriptedUpstream
    from workers_helpers import chat, until

    with ScriptedUpstream() as up:
        config = write_config(tmp_path, up.base_url, None)
        config.write_text(config.read_text() + "server: {workers: 2}\n")
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "turnout", "serve", "--config", str(config),
             "--port", str(port), "--workers", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:

            def answered() -> httpx.Response | None:
                try:
                    return chat(f"http://127.0.0.1:{port}")
                except httpx.TransportError:
                    return None

            answer = until(answered, lambda: proc.poll() is not None, "an answer")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    assert answer.status_code == 200
    assert "x-turnout-worker" not in answer.headers  # one process: no supervisor, no workers
