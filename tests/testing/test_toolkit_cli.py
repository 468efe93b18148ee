"""`turnout serve --record DIR`: a served gateway records to a cassette and replays from it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from toolkit_helpers import upstream_config
from upstream import ScriptedUpstream, Step, free_port


def serve(config: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "turnout", "serve", "--config", str(config), "--port", str(port),
         *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("turnout serve did not become ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)


def ask(port: int) -> str:
    r = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hello"}]},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["choices"][0]["message"]["content"])


def test_serve_records_then_replays_offline(tmp_path: Path) -> None:
    config = tmp_path / "turnout.yaml"
    with ScriptedUpstream(default=Step(content="recorded by serve")) as up:
        config.write_text(
            upstream_config(up.base_url) + f'store: {{url: "sqlite:///{tmp_path}/t.db"}}\n'
        )
        port = free_port()
        proc = serve(config, port, "--record", str(tmp_path / "tapes"), "--cassette-mode", "all")
        try:
            assert ask(port) == "recorded by serve"
        finally:
            stop(proc)
    cassette = tmp_path / "tapes" / "cassette.json"
    assert cassette.is_file()

    port = free_port()
    proc = serve(config, port, "--record", str(tmp_path / "tapes"), "--cassette-mode", "none")
    try:
        assert ask(port) == "recorded by serve"  # the upstream is gone: this is the cassette
    finally:
        stop(proc)
    shown = subprocess.run(
        [sys.executable, "-m", "turnout", "cassette", "show", str(cassette)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0 and "asked 'hello' → 'recorded by serve'" in shown.stdout


def test_cassette_mode_without_record_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "turnout", "serve", "--cassette-mode", "none"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and "--cassette-mode needs --record" in done.stderr
