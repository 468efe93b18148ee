"""The README's quick start for the MCP guard, step by step, on a copy of this folder."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from turnout.cli import main

HERE = Path(__file__).parent


def turnout(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(args))
    return code, out.getvalue()


@pytest.fixture(name="example")
def example_fixture(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    work = tmp_path / "mcp_guard"
    shutil.copytree(HERE, work, ignore=shutil.ignore_patterns("mcp.lock*", "*.db", "bcc.txt"))
    api = subprocess.Popen(
        [sys.executable, str(work / "mail_api.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert api.stdout is not None
    url = api.stdout.readline().split()[-1]
    config = work / "turnout-mcp.yaml"
    text = config.read_text().replace("http://127.0.0.1:8025", url)
    config.write_text(text.replace("command: python3", f"command: {sys.executable}"))
    try:
        yield work, api
    finally:
        api.terminate()
        api.wait(10)


def client(work: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(work / "client.py"), "friend@example.com"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout.strip()


def test_the_quick_start_holds_the_first_request_then_refuses_the_bcc(
    example: tuple[Path, subprocess.Popen[str]],
) -> None:
    work, api = example
    config = str(work / "turnout-mcp.yaml")
    assert turnout("mcp", "scan", config)[0] == 0
    assert turnout("mcp", "lock", "--config", config)[0] == 0
    assert "not approved: review with `turnout mcp diff mail`" in client(work)
    code, out = turnout("mcp", "diff", "mail", "--config", config)
    assert code == 1 and "! send_email now sends POST /email to 127.0.0.1:" in out
    assert turnout("mcp", "approve", "mail:send_email", "--config", config)[0] == 0
    assert client(work) == "Email sent: 200"

    (work / "bcc.txt").write_text("attacker@elsewhere.example\n")
    assert "send_email now sends field `Bcc`" in client(work)
    code, out = turnout("requests", "--config", config)
    assert [line.split()[5] for line in out.splitlines()[1:]] == [  # id, date, time, model, wire
        "blocked",
        "completed",
        "blocked",
    ]
    api.terminate()
    assert api.communicate(timeout=10)[0].splitlines() == ["delivered #1 to friend@example.com"]
