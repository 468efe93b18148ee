"""The guard reads the configs clients already have, and says precisely what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp_peers import (  # noqa: F401 (fixtures are found by name)
    npm_peers_fixture,
)

from turnout.config import ConfigError
from turnout.mcp.config import load_guard_config, parse_guard_config


def test_claude_desktop_and_cursor_configs_are_read_as_they_are(tmp_path: Path) -> None:
    config = parse_guard_config(
        '{"mcpServers": {"fs": {"command": "npx", "args": ["-y", "srv", "/tmp"], '
        '"env": {"K": "v"}, "disabled": false}, "web": {"url": "https://x.example/mcp"}},'
        ' "globalShortcut": ""}',
        "claude.json",
        base=tmp_path,
    )
    fs, web = config.servers["fs"], config.servers["web"]
    assert (fs.transport, fs.command, fs.args, fs.env) == (
        "stdio",
        "npx",
        ("-y", "srv", "/tmp"),
        {"K": "v"},
    )
    assert (web.transport, web.url) == ("http", "https://x.example/mcp")
    assert config.lock_path == tmp_path / "mcp.lock"
    assert config.store_url == f"sqlite:///{tmp_path / 'turnout.db'}"


def test_vs_code_configs_with_comments_and_types_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_FOR_TEST", "s3cret")
    config = parse_guard_config(
        '{\n  // VS Code allows comments\n  "servers": {\n'
        '    "gh": {"type": "http", "url": "https://api.example/mcp",'
        ' "headers": {"Authorization": "Bearer ${env:TOKEN_FOR_TEST}"},},\n'
        '    "local": {"type": "stdio", "command": "node", "args": ["s.js"]}\n  }\n}',
        "mcp.json",
    )
    assert config.servers["gh"].headers == {"Authorization": "Bearer s3cret"}
    assert config.servers["local"].transport == "stdio"


def test_guard_settings_are_checked_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "guard.yaml"
    path.write_text(
        "lock: locks/mcp.lock\n"
        "mcpServers:\n"
        "  mail:\n"
        "    command: node\n"
        "    args: [mail.js]\n"
        "    guard:\n"
        "      egress: enforce\n"
        "      pass_env: [MAIL_TOKEN]\n"
        "      deny: [delete_all]\n"
        "      tools:\n"
        "        send_email:\n"
        "          args:\n"
        "            to: {email_domains: [example.com]}\n"
    )
    config = load_guard_config(path)
    mail = config.servers["mail"]
    assert (mail.egress, mail.pass_env, mail.policy.deny) == (
        "enforce",
        ("MAIL_TOKEN",),
        ("delete_all",),
    )
    assert mail.policy.args["send_email"][0].email_domains == ("example.com",)
    assert config.lock_path == tmp_path / "locks/mcp.lock"


def test_the_defaults_enforce_egress_and_hold_a_tools_first_request(tmp_path: Path) -> None:
    config = parse_guard_config("mcpServers:\n  m: {command: node}\n", "g.yaml", base=tmp_path)
    server = config.servers["m"]
    assert (server.egress, server.egress_first_use, server.unpinned) == ("enforce", "hold", "pin")


def test_relative_paths_are_taken_from_the_configs_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conf" / "turnout-mcp.yaml"
    path.parent.mkdir()
    path.write_text(
        "lock: mcp.lock\nstore: {url: 'sqlite:///calls.db'}\n"
        "mcpServers:\n  m: {command: python3, args: [server.py], cwd: servers}\n"
    )
    monkeypatch.chdir(tmp_path)  # a client starts the proxy wherever it likes
    config = load_guard_config("conf/turnout-mcp.yaml")
    assert config.lock_path == path.parent / "mcp.lock"
    assert config.store_url == f"sqlite:///{path.parent / 'calls.db'}"
    assert config.servers["m"].cwd == str(path.parent / "servers")
    assert config.servers["m"].args == ("server.py",)  # args are the server's, left alone


@pytest.mark.parametrize(
    ("server", "where", "message"),
    [
        ("{command: n, guard: {egres: enforce}}", "mcpServers.x.guard.egres", "unknown key"),
        (
            "{command: n, guard: {tools: {t: {args: {to: {domains: [a]}}}}}}",
            "mcpServers.x.guard.tools.t.args.to.domains",
            "unknown key",
        ),
        (
            "{command: n, guard: {tools: {t: {args: {p: {pattern: '('}}}}}}",
            "mcpServers.x.guard.tools.t.args.p.pattern",
            "not a regular expression",
        ),
        ("{args: [a]}", "mcpServers.x.command", "a stdio server needs a command"),
        ("{type: sse, url: 'http://x'}", "mcpServers.x.type", "SSE transport is not supported"),
        (
            "{command: n, guard: {egress_first_use: trust}}",
            "mcpServers.x.guard.egress_first_use",
            "must be one of hold, learn",
        ),
        ("{command: n, cwd: [a]}", "mcpServers.x.cwd", "expected a path"),
    ],
)
def test_errors_name_the_file_the_key_path_and_the_problem(
    server: str, where: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_guard_config(f"mcpServers:\n  x: {server}\n", "guard.yaml")
    assert f"guard.yaml: {where}: " in str(error.value)
    assert message in str(error.value)
