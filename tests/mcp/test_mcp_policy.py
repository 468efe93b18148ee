"""Argument policy: decided before the server sees the call, and said in words."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import MCPError
from mcp_peers import (  # noqa: F401 (fixtures are found by name)
    EVERYTHING,
    FILESYSTEM,
    GUARDED,
    node_server,
    npm_peers_fixture,
    through_guard,
    write_config,
)

from turnout.mcp.config import ArgRule, Policy
from turnout.mcp.policy import check_arguments, tool_allowed

pytestmark = pytest.mark.anyio

MAIL = Policy(
    args={
        "send_email": (
            ArgRule("to", email_domains=("example.com",)),
            ArgRule("cc[]", email_domains=("example.com",)),
        )
    }
)
FILES = Policy(args={"write_file": (ArgRule("path", path_prefixes=("/srv/data",)),)})


def test_every_recipient_must_be_in_an_allowed_domain() -> None:
    assert check_arguments(MAIL, "send_email", {"to": "a@example.com"}) is None
    assert check_arguments(MAIL, "send_email", {"to": "a@mail.example.com"}) is None
    refused = check_arguments(MAIL, "send_email", {"to": "a@example.com, b@evil.example"})
    assert refused == "argument `to` sends to domain 'evil.example', outside ['example.com']"
    refused = check_arguments(MAIL, "send_email", {"to": "a@example.com", "cc": ["x@evil.example"]})
    assert refused is not None and refused.startswith("argument `cc[0]`")
    assert check_arguments(MAIL, "send_email", {"to": "a@example.com.evil.example"}) is not None


def test_paths_are_judged_after_normalisation() -> None:
    assert check_arguments(FILES, "write_file", {"path": "/srv/data/x.txt"}) is None
    assert check_arguments(FILES, "write_file", {"path": "/srv/data/../../etc/passwd"}) == (
        "argument `path` is outside ['/srv/data']"
    )
    assert check_arguments(FILES, "write_file", {"path": "/srv/database"}) is not None
    assert check_arguments(FILES, "write_file", {"path": "relative.txt"}) is not None


def test_allow_and_deny_lists() -> None:
    assert (
        tool_allowed(Policy(deny=("get-env",)), "get-env") == "tool `get-env` is denied by policy"
    )
    assert tool_allowed(Policy(allow=("echo",)), "get-sum") is not None
    assert tool_allowed(Policy(allow=("echo",)), "echo") is None


async def test_the_proxy_refuses_a_write_outside_the_allowed_prefix(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    guard = {"tools": {"write_file": {"args": {"path": {"path_prefixes": [str(allowed)]}}}}}
    config = write_config(tmp_path, {"fs": node_server(FILESYSTEM, str(tmp_path), guard=guard)})
    async with through_guard(config, "fs") as g:
        await g.client.call_tool("write_file", {"path": str(allowed / "ok.txt"), "content": "1"})
        with pytest.raises(MCPError) as refused:
            await g.client.call_tool(
                "write_file", {"path": str(allowed / "../escape.txt"), "content": "2"}
            )
        assert refused.value.data["turnout"]["reason"] == "policy"
        records = g.records()
    assert not (tmp_path / "escape.txt").exists()  # the server never saw the call
    assert [r["outcome"] for r in records] == ["completed", "blocked"]
    assert "is outside" in records[1]["error"]


async def test_the_proxy_refuses_mail_to_a_foreign_domain_and_denied_tools(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    state.write_text("{}")
    guard = {
        "deny": ["set_mode"],
        "tools": {"send_email": {"args": {"to": {"email_domains": ["example.com"]}}}},
    }
    config = write_config(
        tmp_path, {"mail": node_server(GUARDED, env={"FIXTURE_STATE": str(state)}, guard=guard)}
    )
    async with through_guard(config, "mail") as g:
        sent = await g.client.call_tool(
            "send_email", {"to": "a@example.com", "subject": "s", "body": "b"}
        )
        assert sent.content[0].text == "sent to a@example.com"
        for tool, args in (
            ("send_email", {"to": "boss@evil.example", "subject": "s", "body": "b"}),
            ("set_mode", {"mode": "fast"}),
        ):
            with pytest.raises(MCPError) as refused:
                await g.client.call_tool(tool, args)
            assert refused.value.data["turnout"]["reason"] == "policy"


async def test_arguments_that_break_the_schema_are_rejected_before_the_server(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, {"everything": node_server(EVERYTHING)})
    async with through_guard(config, "everything") as g:
        with pytest.raises(MCPError) as rejected:
            await g.client.call_tool("get-sum", {"a": 1})
        assert rejected.value.code == -32602
        assert "'b' is a required property" in rejected.value.message
        [record] = g.records()
    assert record["outcome"] == "rejected"
    assert [e["state"] for e in record["events"]] == ["received", "rejected"]
