"""Helpers and fixtures for the MCP guard's tests: real servers from npm, fixture servers, the
guard in-process. (Not a conftest.py: a second module named `conftest` would shadow the suite's
own for the tests that import from it.) Test modules import the fixtures they use by name.

The npm servers are installed by `npm ci --prefix tests/mcp` (CI's .ci/run does it). Without them
these tests fail rather than skip: a guard untested against real servers is not tested.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import mcp.client.stdio
import pytest
from mcp import Client, StdioServerParameters

from turnout.mcp.config import GuardConfig, load_guard_config
from turnout.mcp.guard import Guard
from turnout.mcp.record import Recorder
from turnout.mcp.relay import Relay

# server-everything ignores its stdin closing, so each session would wait out the SDK's 2 s grace
# period before the SIGTERM; the tests open dozens of sessions and do not need the grace.
mcp.client.stdio.PROCESS_TERMINATION_TIMEOUT = 0.2

HERE = Path(__file__).parent
NODE_MODULES = HERE / "node_modules"
FIXTURES = HERE / "fixtures"
EVERYTHING = NODE_MODULES / "@modelcontextprotocol/server-everything/dist/index.js"
FILESYSTEM = NODE_MODULES / "@modelcontextprotocol/server-filesystem/dist/index.js"
MEMORY = NODE_MODULES / "@modelcontextprotocol/server-memory/dist/index.js"
THINKING = NODE_MODULES / "@modelcontextprotocol/server-sequential-thinking/dist/index.js"
GUARDED = FIXTURES / "guarded/server.mjs"


@pytest.fixture(scope="session", autouse=True, name="npm_peers")
def npm_peers_fixture() -> None:
    missing = [p for p in (EVERYTHING, FILESYSTEM, MEMORY, THINKING) if not p.exists()]
    if missing or shutil.which("node") is None:
        pytest.fail(
            "the MCP test peers are not installed: run `npm ci --prefix tests/mcp` "
            f"(missing: {', '.join(str(p.relative_to(HERE)) for p in missing) or 'node'})",
            pytrace=False,
        )


def write_config(tmp_path: Path, servers: dict[str, Any], **top: Any) -> GuardConfig:
    path = tmp_path / "turnout-mcp.json"
    doc = {
        "lock": "mcp.lock",
        "store": {"url": "sqlite:///turnout.db", "flush_interval_s": 0.01},
        "mcpServers": servers,
        **top,
    }
    path.write_text(json.dumps(doc, indent=2))
    return load_guard_config(path)


def node_server(script: Path, *args: str, **extra: Any) -> dict[str, Any]:
    return {"command": "node", "args": [str(script), *args], **extra}


@dataclass
class Guarded:
    """The guard in this process between a real SDK client and a real server process."""

    client: Client
    relay: Relay
    recorder: Recorder
    config: GuardConfig
    notifications: list[Any] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        from turnout.store.query import get_request, list_requests

        self.recorder.writer.flush()
        url = self.config.store_url
        return [get_request(url, r["id"]) for r in reversed(list_requests(url, limit=1000))]


@asynccontextmanager
async def through_guard(config: GuardConfig, name: str, **client_kw: Any) -> AsyncIterator[Guarded]:
    spec = config.server(name)
    recorder = Recorder(config.store_url, config.record_bodies, 0.01)
    recorder.open()
    to_relay_send, to_relay_recv = anyio.create_memory_object_stream[Any](0)
    to_client_send, to_client_recv = anyio.create_memory_object_stream[Any](0)
    relay = Relay(
        spec, Guard(spec, config.lock_path), recorder, transport="test", errlog=sys.stderr
    )
    seen: list[Any] = []

    async def on_message(message: Any) -> None:
        seen.append(message)

    @asynccontextmanager
    async def transport() -> AsyncIterator[tuple[Any, Any]]:
        yield to_client_recv, to_relay_send

    try:
        async with anyio.create_task_group() as tg:

            async def run_relay() -> None:
                async with to_client_send:
                    await relay.run(to_relay_recv, to_client_send)

            tg.start_soon(run_relay)
            client_kw.setdefault("message_handler", on_message)
            async with Client(transport(), **client_kw) as client:
                yield Guarded(client, relay, recorder, config, seen)
            await to_relay_send.aclose()
    finally:
        recorder.close()


@asynccontextmanager
async def direct(script: Path, *args: str, **client_kw: Any) -> AsyncIterator[Client]:
    params = StdioServerParameters(command="node", args=[str(script), *args])
    async with Client(params, **client_kw) as client:
        yield client


@dataclass
class EmailApi:
    """A loopback stand-in for an email provider's HTTP API: it keeps what it was sent."""

    url: str
    received: list[dict[str, Any]]


@pytest.fixture(name="email_api")
def email_api_fixture() -> Iterator[EmailApi]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            received.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
            payload = b'{"ErrorCode": 0, "Message": "OK"}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield EmailApi(f"http://127.0.0.1:{server.server_address[1]}", received)
    finally:
        server.shutdown()
        server.server_close()


def install_postmark(app: Path, version: str) -> Path:
    """Put postmark-fixture@VERSION into app/node_modules as `npm install` would, lockfile too."""
    package = app / "node_modules" / "postmark-fixture"
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(FIXTURES / f"postmark-{version}", package)
    sdk = app / "node_modules" / "@modelcontextprotocol"
    if not sdk.exists():
        sdk.symlink_to(NODE_MODULES / "@modelcontextprotocol", target_is_directory=True)
    bin_dir = app / "node_modules" / ".bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "postmark-fixture").is_symlink():
        (bin_dir / "postmark-fixture").symlink_to("../postmark-fixture/server.mjs")
    tarball = b"".join(p.read_bytes() for p in sorted(package.iterdir()))
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    lock = {
        "packages": {"node_modules/postmark-fixture": {"version": version, "integrity": integrity}}
    }
    (app / "node_modules" / ".package-lock.json").write_text(json.dumps(lock))
    return package / "server.mjs"
