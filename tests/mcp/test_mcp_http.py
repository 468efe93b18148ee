"""Streamable HTTP on both sides: a client talks HTTP to the proxy, the proxy HTTP to a server."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mcp.types as T
import pytest
import uvicorn
from mcp import Client
from mcp_peers import (  # noqa: F401 (fixtures are found by name)
    EVERYTHING,
    node_server,
    npm_peers_fixture,
    write_config,
)

from turnout.mcp.proxy import HttpFront
from turnout.store.query import list_requests

pytestmark = pytest.mark.anyio


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(url: str, deadline_s: float = 20) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening at {url}")


@pytest.fixture
def everything_over_http() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        ["node", str(EVERYTHING), "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/mcp")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def http_proxy(tmp_path: Path, everything_over_http: str) -> Iterator[tuple[str, Any]]:
    config = write_config(
        tmp_path,
        {
            "local": node_server(EVERYTHING),
            "remote": {"type": "http", "url": everything_over_http},
        },
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            HttpFront(config), host="127.0.0.1", port=port, lifespan="on", log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", config
    finally:
        server.should_exit = True
        thread.join(timeout=15)


async def _sampling(ctx: Any, params: Any) -> T.CreateMessageResult:
    return T.CreateMessageResult(
        role="assistant", content=T.TextContent(type="text", text="from the client"), model="m"
    )


@pytest.mark.parametrize("server", ["local", "remote"])
async def test_a_client_over_http_gets_tools_progress_and_sampling_through_the_guard(
    http_proxy: tuple[str, Any], server: str
) -> None:
    base, config = http_proxy
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with Client(f"{base}/mcp/{server}", sampling_callback=_sampling) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"echo", "trigger-sampling-request", "trigger-long-running-operation"} <= names
        echo = await client.call_tool("echo", {"message": "over http"})
        assert echo.content[0].text == "Echo: over http"
        sampled = await client.call_tool("trigger-sampling-request", {"prompt": "hi"})
        assert "from the client" in str(sampled.content[0])
        await client.session.call_tool(
            "trigger-long-running-operation",
            {"duration": 0.2, "steps": 2},
            progress_callback=on_progress,
        )
    assert progress == [1, 2]
    rows = list_requests(config.store_url, limit=10, model=f"mcp:{server}/echo")
    assert [r["outcome"] for r in rows] == ["completed"]


async def test_unknown_paths_and_sessions_are_answered_plainly(http_proxy: tuple[str, Any]) -> None:
    base, _ = http_proxy
    async with httpx.AsyncClient() as http:
        missing = await http.post(f"{base}/mcp/nope", json={})
        assert missing.status_code == 404 and "/mcp/local" in missing.text
        stale = await http.post(f"{base}/mcp/local", json={}, headers={"mcp-session-id": "gone"})
        assert stale.status_code == 404
        health = await http.get(f"{base}/healthz")
        assert health.json() == {"ok": True, "servers": ["local", "remote"]}
