"""The postmark-mcp attack: a new version, identical tool definitions, one more field sent out.

Definition hashes cannot see it. Two mechanisms do: the package identity (a new version blocks
the server until a person approves it) and behaviour pinning (the shape of what `send_email`
sends to the email API; 1.0.16 adds `Bcc`). The defaults are tested in test_mcp_default_egress;
here `egress_first_use: learn`, which pins a tool's first call instead of holding it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import MCPError
from mcp_peers import (  # noqa: F401 (fixtures are found by name)
    EmailApi,
    email_api_fixture,
    install_postmark,
    npm_peers_fixture,
    through_guard,
    write_config,
)

from turnout.mcp.canonical import tool_hash
from turnout.mcp.commands import approve, diff
from turnout.mcp.config import GuardConfig
from turnout.mcp.lockfile import LockFile

pytestmark = pytest.mark.anyio

MESSAGE = {"to": "friend@example.com", "subject": "hello", "textBody": "see you"}


def postmark(tmp_path: Path, api: EmailApi, egress: str, lock: str = "mcp.lock") -> GuardConfig:
    server = {
        "command": "node",
        "args": [str(tmp_path / "app/node_modules/postmark-fixture/server.mjs")],
        "env": {"POSTMARK_API_URL": api.url},
        "guard": {"egress": egress, "egress_first_use": "learn"},
    }
    return write_config(tmp_path, {"postmark": server}, lock=lock)


async def send(config: GuardConfig) -> tuple[Any, list[dict[str, Any]]]:
    async with through_guard(config, "postmark") as g:
        result = await g.client.call_tool("send_email", MESSAGE)
        return result, g.records()


async def test_version_bump_with_identical_definitions_is_blocked_by_package_identity(
    tmp_path: Path, email_api: EmailApi
) -> None:
    install_postmark(tmp_path / "app", "1.0.15")
    config = postmark(tmp_path, email_api, egress="off")
    await send(config)  # first use: pinned
    pinned = LockFile.load(config.lock_path).servers["postmark"]

    install_postmark(tmp_path / "app", "1.0.16")
    with pytest.raises(BaseException) as raised:
        await send(config)
    refused = _only(raised.value, MCPError)
    assert refused.data["turnout"]["reason"] == "package_changed"
    assert "package postmark-fixture 1.0.15 → 1.0.16" in refused.message
    assert len(email_api.received) == 1  # the new version never ran

    live = await diff(config, [], live=True)
    assert [c.kind for c in live.changes] == ["package"]  # not one tool definition differs
    fresh = LockFile.load(config.lock_path)
    assert fresh.servers["postmark"].tools == pinned.tools
    assert (
        tool_hash(pinned.tools["send_email"]["definition"]) == pinned.tools["send_email"]["sha256"]
    )


async def test_a_learned_first_call_pins_egress_and_the_added_bcc_is_refused_before_it_leaves(
    tmp_path: Path, email_api: EmailApi
) -> None:
    install_postmark(tmp_path / "app", "1.0.15")
    config = postmark(tmp_path, email_api, egress="enforce")
    result, _ = await send(config)  # first use: what send_email sends is learned and pinned
    assert result.content[0].text == "Email sent: 200"
    host = email_api.url.removeprefix("http://")
    assert LockFile.load(config.lock_path).servers["postmark"].egress["send_email"] == [
        {
            "host": host,
            "method": "POST",
            "path": "/email",
            "keys": ["From", "Subject", "TextBody", "To"],
        }
    ]

    # The update lands and a person approves it: the definitions are the same, after all.
    install_postmark(tmp_path / "app", "1.0.16")
    await approve(config, ["postmark"], live=True)

    result, records = await send(config)
    assert result.is_error
    assert "turnout egress guard refused" in result.content[0].text
    assert len(email_api.received) == 1  # the Bcc'd message never reached the email API
    assert records[-1]["outcome"] == "blocked"
    assert records[-1]["error"].startswith("egress_refused: send_email now sends field `Bcc`")

    words = "\n".join((await diff(config, [])).lines)
    assert f"send_email now sends field `Bcc` to {host} (POST /email)" in words
    # Approving the new behaviour lets it through.
    await approve(config, ["postmark:send_email"])
    result, _ = await send(config)
    assert not result.is_error
    assert email_api.received[-1]["body"]["Bcc"] == "phan@giftshop.example"


async def test_record_mode_lets_it_through_but_diff_between_versions_shows_the_new_field(
    tmp_path: Path, email_api: EmailApi
) -> None:
    install_postmark(tmp_path / "app", "1.0.15")
    old = postmark(tmp_path, email_api, egress="record", lock="old.lock")
    await send(old)
    install_postmark(tmp_path / "app", "1.0.16")
    new = postmark(tmp_path, email_api, egress="record", lock="new.lock")
    result, records = await send(new)
    assert not result.is_error and records[-1]["outcome"] == "completed"

    report = await diff(None, [str(old.lock_path), str(new.lock_path)])
    words = "\n".join(report.lines)
    host = email_api.url.removeprefix("http://")
    assert "package postmark-fixture 1.0.15 → 1.0.16" in words
    assert f"send_email now sends field `Bcc` to {host} (POST /email)" in words
    assert not [c for c in report.changes if c.kind.startswith("tool_")]


async def test_an_npx_launch_is_identified_by_what_npx_resolves(
    tmp_path: Path, email_api: EmailApi
) -> None:
    app = tmp_path / "app"
    install_postmark(app, "1.0.15")
    server = {
        "command": "npx",
        "args": ["--no-install", "postmark-fixture"],
        "cwd": str(app),
        "env": {"POSTMARK_API_URL": email_api.url},
    }
    config = write_config(tmp_path, {"postmark": server})
    await send(config)
    pinned = LockFile.load(config.lock_path).servers["postmark"].package
    assert (pinned["name"], pinned["version"]) == ("postmark-fixture", "1.0.15")
    assert pinned["integrity"].startswith("sha512-")
    install_postmark(app, "1.0.16")  # what `npx -y postmark-fixture` does once 1.0.16 is out
    with pytest.raises(BaseException) as raised:
        await send(config)
    assert "package postmark-fixture 1.0.15 → 1.0.16" in _only(raised.value, MCPError).message


def _only(exc: BaseException, kind: type[Any]) -> Any:
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        found = [f for f in (_only(e, kind) for e in exc.exceptions) if f is not None]
        return found[0] if found else None
    return None
