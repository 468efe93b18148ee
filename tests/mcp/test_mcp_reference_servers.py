"""The guard is transparent for the reference servers from npm: same answers, no false alarms."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import mcp.types as T
import pytest
from mcp_peers import (  # noqa: F401 (fixtures are found by name)
    EVERYTHING,
    FILESYSTEM,
    direct,
    node_server,
    npm_peers_fixture,
    through_guard,
    write_config,
)

from turnout.mcp.lockfile import LockFile

pytestmark = pytest.mark.anyio

# What the egress recorder launches a server with (EgressRecorder.env).
GUARD_ENV = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
    "NODE_OPTIONS",
    "TURNOUT_EGRESS_URL",
)

# One call per tool of server-everything, with arguments that keep it quick and offline.
EVERYTHING_CALLS: dict[str, dict[str, Any]] = {
    "echo": {"message": "hello through the guard"},
    "get-annotated-message": {"messageType": "success", "includeImage": True},
    "get-env": {},
    "get-resource-links": {"count": 4},
    "get-resource-reference": {"resourceType": "Text", "resourceId": 3},
    "get-structured-content": {"location": "Chicago"},
    "get-sum": {"a": 2, "b": 40},
    "get-tiny-image": {},
    "gzip-file-as-resource": {
        "name": "hello.txt.gz",
        "data": "data:text/plain;base64,aGVsbG8gd29ybGQ=",
        "outputType": "resource",
    },
    "toggle-simulated-logging": {},
    "toggle-subscriber-updates": {},
    "trigger-long-running-operation": {"duration": 0.2, "steps": 2},
    "get-roots-list": {},
    "trigger-elicitation-request": {},
    "trigger-url-elicitation": {"url": "https://example.com/x", "elicitationId": "fixed-id"},
    "trigger-sampling-request": {"prompt": "say hi", "maxTokens": 5},
    "simulate-research-query": {"topic": "railway switches"},
}


async def _sampling(ctx: Any, params: Any) -> T.CreateMessageResult:
    text = f"sampled: {params.messages[0].content.text}"
    return T.CreateMessageResult(
        role="assistant", content=T.TextContent(type="text", text=text), model="test-model"
    )


async def _elicit(ctx: Any, params: Any) -> T.ElicitResult:
    return T.ElicitResult(action="decline")


async def _roots(ctx: Any) -> T.ListRootsResult:
    return T.ListRootsResult(roots=[T.Root(uri="file:///tmp/turnout-root", name="tmp")])


CALLBACKS = {
    "sampling_callback": _sampling,
    "elicitation_callback": _elicit,
    "list_roots_callback": _roots,
}


_CLOCK = re.compile(
    r"\d{1,2}:\d{2}:\d{2}( [AP]M)?|\d{4}-\d{2}-\d{2}T[\d:.]+Z?|\d{1,2}/\d{1,2}/\d{4}"
)


def _dump(result: Any) -> Any:
    """A result as JSON, with wall-clock times (which differ between two runs) blanked."""
    text = json.dumps(result.model_dump(mode="json", exclude_none=True), sort_keys=True)
    return json.loads(_CLOCK.sub("<time>", text))


async def _call_all(client: Any, calls: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for name, args in calls.items():
        out[name] = _dump(await client.call_tool(name, args))
    return out


async def test_every_everything_tool_answers_the_same_directly_and_through_the_guard(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, {"everything": node_server(EVERYTHING)})
    async with direct(EVERYTHING, **CALLBACKS) as client:
        listed = sorted(t.name for t in (await client.list_tools()).tools)
        expected = await _call_all(client, EVERYTHING_CALLS)
    async with through_guard(config, "everything", **CALLBACKS) as g:
        assert sorted(t.name for t in (await g.client.list_tools()).tools) == listed
        got = await _call_all(g.client, EVERYTHING_CALLS)
        records = g.records()
    assert sorted(EVERYTHING_CALLS) == listed, "a tool was added upstream: give it a call above"
    # Under the default `egress: enforce` the server starts with the recorder's variables (its
    # proxy, the Node hook); apart from those, it sees the environment it would see directly.
    env = json.loads(got["get-env"]["content"][0]["text"])
    assert set(env) - set(json.loads(expected["get-env"]["content"][0]["text"])) == set(GUARD_ENV)
    trimmed = {k: v for k, v in env.items() if k not in GUARD_ENV}
    got["get-env"]["content"][0]["text"] = json.dumps(trimmed, indent=2, ensure_ascii=False)
    for name in EVERYTHING_CALLS:
        assert got[name] == expected[name], name
    # Each call is a recorded run; a tool that reports an error fails as an upstream failure.
    outcomes = {r["model"].removeprefix("mcp:everything/"): r["outcome"] for r in records}
    assert outcomes == {
        n: "failed_upstream" if expected[n].get("is_error") else "completed"
        for n in EVERYTHING_CALLS
    }


async def test_resources_prompts_and_completions_pass_through_unchanged(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"everything": node_server(EVERYTHING)})
    async with direct(EVERYTHING) as client:
        resources = _dump(await client.list_resources())
        templates = _dump(await client.list_resource_templates())
        first = resources["resources"][0]["uri"]
        read = _dump(await client.read_resource(first))
        prompts = _dump(await client.list_prompts())
        prompt = _dump(await client.get_prompt("args-prompt", {"city": "Zurich", "state": "ZH"}))
    async with through_guard(config, "everything") as g:
        assert _dump(await g.client.list_resources()) == resources
        assert _dump(await g.client.list_resource_templates()) == templates
        assert _dump(await g.client.read_resource(first)) == read
        assert _dump(await g.client.list_prompts()) == prompts
        assert (
            _dump(await g.client.get_prompt("args-prompt", {"city": "Zurich", "state": "ZH"}))
            == prompt
        )
        await g.client.subscribe_resource(first)
        await g.client.send_ping()


async def test_progress_notifications_reach_the_client(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"everything": node_server(EVERYTHING)})
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with through_guard(config, "everything") as g:
        await g.client.session.call_tool(
            "trigger-long-running-operation",
            {"duration": 0.3, "steps": 3},
            progress_callback=on_progress,
        )
    assert progress == [1, 2, 3]


async def test_a_cancelled_call_is_cancelled_upstream_and_recorded(tmp_path: Path) -> None:
    import anyio

    config = write_config(tmp_path, {"everything": node_server(EVERYTHING)})
    async with through_guard(config, "everything") as g:
        with anyio.move_on_after(0.5):
            await g.client.call_tool("trigger-long-running-operation", {"duration": 5, "steps": 5})
        # The session is still usable after the cancellation.
        echo = await g.client.call_tool("echo", {"message": "still here"})
        assert echo.content[0].text == "Echo: still here"
        records = g.records()
    assert [r["outcome"] for r in records] == ["cancelled", "completed"]


async def test_every_filesystem_tool_answers_the_same_directly_and_through_the_guard(
    tmp_path: Path,
) -> None:
    root = tmp_path / "files"
    (root / "docs").mkdir(parents=True)
    (root / "docs/a.txt").write_text("alpha\nbeta\ngamma\n")
    (root / "b.md").write_text("# title\n")
    (root / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    config = write_config(tmp_path, {"fs": node_server(FILESYSTEM, str(root))})

    # Read-only tools, then writes to paths of their own, so both sessions see the same tree.
    def calls(tag: str) -> dict[str, dict[str, Any]]:
        return {
            "list_allowed_directories": {},
            "read_text_file": {"path": str(root / "docs/a.txt"), "head": 2},
            "read_file": {"path": str(root / "b.md")},
            "read_media_file": {"path": str(root / "img.png")},
            "read_multiple_files": {"paths": [str(root / "b.md"), str(root / "docs/a.txt")]},
            "list_directory": {"path": str(root / "docs")},
            "directory_tree": {"path": str(root / "docs")},
            "search_files": {"path": str(root), "pattern": "*.txt"},
            "get_file_info": {"path": str(root / "b.md")},
            "edit_file": {
                "path": str(root / "docs/a.txt"),
                "edits": [{"oldText": "beta", "newText": "BETA"}],
                "dryRun": True,
            },
            "write_file": {"path": str(root / f"{tag}.txt"), "content": "written"},
            "create_directory": {"path": str(root / f"dir-{tag}")},
            "move_file": {
                "source": str(root / f"{tag}.txt"),
                "destination": str(root / f"dir-{tag}/moved.txt"),
            },
        }

    async with direct(FILESYSTEM, str(root)) as client:
        names = sorted(t.name for t in (await client.list_tools()).tools)
        expected = await _call_all(client, calls("x"))
    async with through_guard(config, "fs") as g:
        assert sorted(t.name for t in (await g.client.list_tools()).tools) == names
        got = await _call_all(g.client, calls("x2"))
    assert set(names) >= set(calls("x")), "filesystem lost a tool"
    missing = set(names) - set(calls("x")) - {"list_directory_with_sizes"}
    assert not missing, f"new filesystem tools to cover: {missing}"
    for name in calls("x"):
        if name in ("write_file", "create_directory", "move_file"):
            # Same answer apart from the path each session wrote to.
            assert _dump_text(got[name]).replace("x2", "x") == _dump_text(expected[name]), name
        elif name == "get_file_info":
            continue  # access times move between the two reads
        else:
            assert got[name] == expected[name], name


def _dump_text(result: dict[str, Any]) -> str:
    return " ".join(c.get("text", "") for c in result.get("content", []))


@pytest.mark.parametrize("server", ["everything", "fs"])
async def test_ten_reconnects_raise_no_false_alarm(tmp_path: Path, server: str) -> None:
    config = write_config(
        tmp_path,
        {"everything": node_server(EVERYTHING), "fs": node_server(FILESYSTEM, str(tmp_path))},
    )
    names: set[str] = set()
    for _ in range(10):
        async with through_guard(config, server) as g:
            listed = {t.name for t in (await g.client.list_tools()).tools}
            names = names or listed
            assert listed == names  # nothing hidden on any connect
    lock = LockFile.load(config.lock_path)
    assert set(lock.servers[server].tools) == names
    assert server not in lock.pending  # nothing held back for review
