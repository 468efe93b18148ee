"""A real turnout gateway inside the test process: uvicorn on a loopback port, in a thread.

The agent under test talks HTTP to it exactly as it would in production; the cassette and fault
layers go around each deployment's backend through `Gateway(wrap_backend=...)`.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import uvicorn

from turnout.backends.base import Backend
from turnout.config import Config, default_config, parse_config
from turnout.gateway import Gateway
from turnout.routing.router import CONVERSATION_HEADER
from turnout.server.app import App
from turnout.testing.cassette import Cassette
from turnout.testing.fault_backend import CONVERSATION, FaultBackend
from turnout.testing.faults import FaultPlan
from turnout.testing.recording import CassetteBackend

if TYPE_CHECKING:
    import openai

_START_TIMEOUT_S = 120.0


def backend_wrapper(
    cassette: Cassette | None = None, faults: FaultPlan | None = None
) -> Callable[[str, Backend], Backend]:
    """`wrap_backend` for a Gateway: faults outside, the cassette inside, the real one within.

    Faults sit outside so what they inject is never recorded, and a replayed answer can be
    faulted exactly like a live one.
    """

    def wrap(name: str, backend: Backend) -> Backend:
        if cassette is not None:
            backend = CassetteBackend(backend, cassette, name)
        if faults is not None:
            backend = FaultBackend(backend, faults, name)
        return backend

    return wrap


class _Conversations:
    """ASGI middleware: hands each request's conversation id to the fault layer."""

    _HEADER = CONVERSATION_HEADER.encode()

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        value = None
        if scope["type"] == "http":
            found = [v for k, v in scope["headers"] if k.lower() == self._HEADER]
            value = found[0].decode("latin-1") if found else None
        token = CONVERSATION.set(value)
        try:
            await self.app(scope, receive, send)
        finally:
            CONVERSATION.reset(token)


def as_config(config: Config | str | None, store_dir: Path) -> Config:
    """A config (object, YAML text, or None for the embedded default) whose store is in
    `store_dir`, so tests never write a turnout.db where they run."""
    if config is None:
        cfg = default_config()
    elif isinstance(config, str):
        cfg = parse_config(config, "<test config>")
    else:
        cfg = config
    store = dataclasses.replace(
        cfg.store, url=f"sqlite:///{store_dir / 'turnout.db'}", flush_interval_s=0.05
    )
    return dataclasses.replace(cfg, store=store)


class InProcessGateway:
    def __init__(
        self,
        config: Config | str | None = None,
        *,
        cassette: Cassette | None = None,
        faults: FaultPlan | None = None,
        store_dir: str | Path | None = None,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if store_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="turnout-test-")
            store_dir = self._tmp.name
        self.config = as_config(config, Path(store_dir))
        self.cassette = cassette
        if cassette is not None:  # the keys this config names are secrets, whatever their names
            for dep in self.config.deployments.values():
                if dep.api_key_env and os.environ.get(dep.api_key_env):
                    cassette.redactor.add(dep.api_key_env, os.environ[dep.api_key_env])
        self.faults = faults
        self.gateway = Gateway(self.config, wrap_backend=backend_wrapper(cassette, faults))
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as `base_url`."""
        return self.url + "/v1"

    def start(self) -> InProcessGateway:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it every response waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                _Conversations(App(self.gateway)),
                loop="asyncio",
                http="httptools",
                lifespan="on",
                log_level="warning",
            )
        )
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="turnout-gateway", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process turnout gateway did not start")
            time.sleep(0.005)
        return self

    def openai(self, conversation: str | None = None, **options: Any) -> openai.OpenAI:
        """An `openai.OpenAI` client pointed at this gateway (no SDK retries: turnout retries).
        `conversation` labels its requests, so fault positions count per agent."""
        import openai

        if conversation is not None:
            headers = dict(options.pop("default_headers", None) or {})
            headers[CONVERSATION_HEADER] = conversation
            options["default_headers"] = headers
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 120.0)
        return openai.OpenAI(base_url=self.base_url, api_key="turnout-test", **options)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
        self._server = self._thread = None
        if self.cassette is not None:
            self.cassette.save()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> InProcessGateway:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
