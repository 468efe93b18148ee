"""`turnout mcp …` as a person and CI use it: exit codes, words, and the shared request record."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp_peers import (  # noqa: F401 (fixtures are found by name)
    EVERYTHING,
    GUARDED,
    node_server,
    npm_peers_fixture,
    through_guard,
    write_config,
)

from turnout.cli import main
from turnout.mcp.config import load_guard_config

pytestmark = pytest.mark.anyio

TURNOUT = [sys.executable, "-m", "turnout"]


def turnout(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real CLI entry point, in this process (a Python start-up per call adds up)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def guarded_config(tmp_path: Path, variant: str) -> Path:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"variant": variant}))
    write_config(tmp_path, {"mail": node_server(GUARDED, env={"FIXTURE_STATE": str(state)})})
    return tmp_path / "turnout-mcp.json"


def test_lock_diff_and_approve_speak_in_exit_codes_and_words(tmp_path: Path) -> None:
    config = guarded_config(tmp_path, "base")
    first = turnout("mcp", "lock", "--config", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "mail: pinned 3 tools, npm guarded-fixture@1.0.0" in first.stdout
    assert turnout("mcp", "lock", "--config", str(config), cwd=tmp_path).returncode == 0

    guarded_config(tmp_path, "param")
    changed = turnout("mcp", "lock", "--config", str(config), cwd=tmp_path)
    assert changed.returncode == 1
    assert "send_email: inputSchema gained property `bcc`" in changed.stdout
    live = turnout("mcp", "diff", "--live", "--json", "--config", str(config), cwd=tmp_path)
    assert live.returncode == 1
    assert [c["kind"] for c in json.loads(live.stdout)["changes"]] == ["tool_changed"]

    ok = turnout("mcp", "approve", "--live", "mail", "--config", str(config), cwd=tmp_path)
    assert ok.returncode == 0 and "approved mail" in ok.stdout
    assert turnout("mcp", "diff", "--live", "--config", str(config), cwd=tmp_path).returncode == 0


def test_a_config_error_names_the_file_and_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mcpServers:\n  x:\n    command: node\n    guard: {egress: sometimes}\n")
    result = turnout("mcp", "lock", "--config", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert (
        "bad.yaml: mcpServers.x.guard.egress: must be one of off, record, enforce" in result.stderr
    )


def test_scan_exits_one_on_poisoning_and_zero_on_the_reference_server(tmp_path: Path) -> None:
    poisoned = guarded_config(tmp_path, "poisoned")
    result = turnout("mcp", "scan", "--json", str(poisoned), cwd=tmp_path)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert {f["rule"] for f in report["findings"] if f["severity"] == "high"} >= {
        "hidden-markup",
        "secret-access",
        "exfiltration",
    }
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps({"mcpServers": {"everything": node_server(EVERYTHING)}}))
    result = turnout("mcp", "scan", str(clean), cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "nothing was sent anywhere" in result.stdout


async def test_the_stdio_proxy_records_each_call_for_turnout_requests_and_trace(
    tmp_path: Path,
) -> None:
    config = guarded_config(tmp_path, "base")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "turnout", "mcp", "proxy", "--config", str(config), "mail"],
        cwd=str(tmp_path),
    )
    async with Client(params) as client:
        assert (await client.call_tool("add", {"a": 20, "b": 22})).content[0].text == "42"
    store = f"sqlite:///{tmp_path / 'turnout.db'}"
    listed = turnout(
        "requests", "--store", store, "--json", "--model", "mcp:mail/add", cwd=tmp_path
    )
    [row] = json.loads(listed.stdout)
    assert (row["operation"], row["outcome"], row["deployments"]) == (
        "tool_call",
        "completed",
        ["mail"],
    )
    trace = turnout("trace", row["id"], "--store", store, cwd=tmp_path)
    states = [line.split()[3] for line in trace.stdout.splitlines() if line.strip().startswith("+")]
    assert states == ["received", "routed", "attempting", "validating", "completed"]


async def test_turnout_requests_and_trace_read_the_record_the_guards_config_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state.json"
    state.write_text("{}")
    config_path = tmp_path / "turnout-mcp.yaml"
    config_path.write_text(
        "lock: mcp.lock\n"
        "store: {url: 'sqlite:///calls.db', flush_interval_s: 0.01}\n"
        "mcpServers:\n"
        f"  mail: {{command: node, args: ['{GUARDED}'], env: {{FIXTURE_STATE: '{state}'}}}}\n"
    )
    async with through_guard(load_guard_config(config_path), "mail") as g:
        await g.client.call_tool("add", {"a": 1, "b": 2})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the store is found beside the config, not here
    listed = turnout("requests", "--config", str(config_path), "--json", cwd=elsewhere)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["model"], row["outcome"]) == ("mcp:mail/add", "completed")
    trace = turnout("trace", row["id"], "--config", str(config_path), cwd=elsewhere)
    assert trace.returncode == 0 and "completed" in trace.stdout
    bad = tmp_path / "gateway.yaml"
    bad.write_text("lock: mcp.lock\n")  # neither a gateway config nor a guard config
    failed = turnout("requests", "--config", str(bad), cwd=elsewhere)
    assert failed.returncode == 2 and "lock" in failed.stderr
