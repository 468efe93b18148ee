"""The outbound-change attack under the defaults a new user gets (no `guard:` keys at all).

A mail server whose `send_email` starts adding a `Bcc` to the email API call, with every tool
definition unchanged: a Python server whose behaviour changes at runtime (its file, hence its
identity, is the same), and a Node server whose new version a person approves because its
definitions are identical. A loopback email API counts deliveries: none after the change.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import MCPError
from mcp_peers import (  # noqa: F401 (fixtures are found by name)
    FIXTURES,
    EmailApi,
    email_api_fixture,
    install_postmark,
    npm_peers_fixture,
    through_guard,
    write_config,
)

from turnout.mcp.commands import approve, diff, lock_servers
from turnout.mcp.config import GuardConfig
from turnout.mcp.lockfile import LockFile

pytestmark = pytest.mark.anyio

PYMAIL = FIXTURES / "pymail/server.py"
FIELDS = "From, Subject, TextBody, To"


async def send(config: GuardConfig, times: int = 1) -> tuple[list[Any], list[dict[str, Any]]]:
    """`times` calls of send_email in one session: the answers (an MCPError raised counts as
    one) and every record so far."""
    answers: list[Any] = []
    async with through_guard(config, "mail") as g:
        listed = {t.name: t for t in (await g.client.list_tools()).tools}
        body = (
            "textBody" if "textBody" in listed["send_email"].input_schema["properties"] else "body"
        )
        for i in range(times):
            message = {"to": "friend@example.com", "subject": f"hello {i}", body: "see you"}
            try:
                answers.append(await g.client.call_tool("send_email", message))
            except MCPError as exc:
                answers.append(exc)
        return answers, g.records()


def refused(answer: Any) -> str:
    """The words of a refused call, whether the server made them an error result or an error."""
    if isinstance(answer, MCPError):
        return answer.message
    assert answer.is_error, answer
    return str(answer.content[0].text)


def inner_error(exc: BaseException) -> MCPError:
    """The MCPError inside the exception groups a task group wraps it in."""
    while isinstance(exc, BaseExceptionGroup):
        exc = next(e for e in exc.exceptions if isinstance(e, MCPError | BaseExceptionGroup))
    assert isinstance(exc, MCPError), exc
    return exc


async def first_call_is_held_then_approved(config: GuardConfig, api: EmailApi) -> None:
    """What the defaults cost a new user: a tool's first outbound request waits for a person."""
    host = api.url.removeprefix("http://")
    [answer], records = await send(config)
    assert "turnout egress guard refused" in refused(answer)
    assert "turnout mcp approve mail:send_email" in refused(answer)
    assert api.received == []
    assert records[-1]["outcome"] == "blocked"
    assert records[-1]["error"].startswith(
        f"egress_refused: send_email now sends POST /email to {host} with fields {FIELDS}"
    )
    shown = "\n".join((await diff(config, [])).lines)
    assert f"! send_email now sends POST /email to {host} with fields {FIELDS}" in shown

    report = await approve(config, ["mail:send_email"])
    assert report.lines == [
        f"approved mail:send_email: send_email now sends POST /email to {host} with fields {FIELDS}"
    ]


async def test_python_server_adding_a_bcc_at_runtime_delivers_nothing_under_the_defaults(
    tmp_path: Path, email_api: EmailApi
) -> None:
    state = tmp_path / "mail-state.json"
    state.write_text("{}")
    server = {
        "command": sys.executable,
        "args": [str(PYMAIL)],
        "env": {"MAIL_API_URL": email_api.url, "MAIL_STATE": str(state)},
    }
    config = write_config(tmp_path, {"mail": server})
    assert config.server("mail").egress == "enforce"
    await lock_servers(config, [], update=False)
    await first_call_is_held_then_approved(config, email_api)

    answers, _ = await send(config, times=3)
    assert [a.content[0].text for a in answers] == ["Email sent: 200"] * 3
    assert len(email_api.received) == 3

    state.write_text(json.dumps({"bcc": "phan@giftshop.example"}))  # the same file, new orders
    answers, records = await send(config, times=3)
    assert len(email_api.received) == 3  # not one message after the change
    for answer in answers:
        assert "send_email now sends field `Bcc`" in refused(answer)
    # The server answered each refusal with a JSON-RPC error; the record still says who refused.
    assert all(isinstance(a, MCPError) for a in answers)
    assert [r["outcome"] for r in records[-3:]] == ["blocked"] * 3
    assert all(r["error"].startswith("egress_refused: ") for r in records[-3:])
    host = email_api.url.removeprefix("http://")
    shown = "\n".join((await diff(config, [])).lines)
    assert f"! send_email now sends field `Bcc` to {host} (POST /email)" in shown


async def test_node_server_whose_new_version_adds_a_bcc_delivers_nothing_under_the_defaults(
    tmp_path: Path, email_api: EmailApi
) -> None:
    server_js = install_postmark(tmp_path / "app", "1.0.15")
    server = {
        "command": "node",
        "args": [str(server_js)],
        "env": {"POSTMARK_API_URL": email_api.url},
    }
    config = write_config(tmp_path, {"mail": server})
    await lock_servers(config, [], update=False)
    await first_call_is_held_then_approved(config, email_api)
    answers, _ = await send(config, times=3)
    assert len(email_api.received) == 3

    install_postmark(tmp_path / "app", "1.0.16")
    with pytest.raises(BaseException) as raised:  # the new version is never launched
        await send(config)
    assert "package postmark-fixture 1.0.15 → 1.0.16" in inner_error(raised.value).message
    live = await diff(config, [], live=True)
    assert [c.kind for c in live.changes] == ["package"]  # identical definitions: looks benign
    await approve(config, ["mail"], live=True)
    assert LockFile.load(config.lock_path).servers["mail"].egress["send_email"]  # kept

    answers, records = await send(config, times=3)
    assert len(email_api.received) == 3  # not one message after the change
    for answer in answers:
        assert "send_email now sends field `Bcc`" in refused(answer)
    assert all(a.is_error for a in answers)  # this server makes a refusal an error result
    assert [r["outcome"] for r in records[-3:]] == ["blocked"] * 3


async def test_lock_pins_what_a_server_sends_while_it_starts(
    tmp_path: Path, email_api: EmailApi
) -> None:
    """Startup traffic is approved with the server by `lock`; a tool's is held for approval."""
    state = tmp_path / "s.json"
    state.write_text("{}")
    server = {
        "command": "node",
        "args": [str(FIXTURES / "guarded/server.mjs")],
        "env": {"FIXTURE_STATE": str(state), "STARTUP_PING_URL": email_api.url + "/ping"},
    }
    config = write_config(tmp_path, {"mail": server})
    report = await lock_servers(config, [], update=False)
    host = email_api.url.removeprefix("http://")
    assert report.lines[1:] == [
        f"  pinned: (outside any tool call) now sends POST /ping to {host} with fields version"
    ]
    async with through_guard(config, "mail") as g:
        assert (await g.client.call_tool("add", {"a": 1, "b": 2})).content[0].text == "3"
    assert [r["path"] for r in email_api.received] == ["/ping", "/ping"]  # lock's, the proxy's
    assert "mail" not in LockFile.load(config.lock_path).pending
