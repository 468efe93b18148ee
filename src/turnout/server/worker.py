"""One worker of `turnout serve --workers N`: its own event loop and gateway on the shared port.

The supervisor (`server/workers.py`) starts it as `python -m turnout.server.worker` with the
config it has already validated, and keeps one end of a socket pair: the worker writes `ready`
on it once it accepts connections, and drains when it reads end-of-file (the supervisor is gone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from turnout.gateway import Gateway
    from turnout.server.asgi import Receive, Scope, Send

log = logging.getLogger("turnout.worker")

ENV_INDEX = "TURNOUT_WORKER_INDEX"
ENV_COUNT = "TURNOUT_WORKERS"
HEADER = b"x-turnout-worker"
METRICS_SYNC_S = 1.0  # how stale the record writer's gauges may be in another worker's scrape


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    index: int  # 0 … count - 1
    count: int


def worker_identity() -> WorkerIdentity:
    """Which worker this process is: `(0, 1)` when the gateway runs as one process."""
    return WorkerIdentity(int(os.environ.get(ENV_INDEX, "0")), int(os.environ.get(ENV_COUNT, "1")))


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound with SO_REUSEPORT, so every worker listens on the same port."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class WorkerHeader:
    """Names the worker that answered in every response (`x-turnout-worker: <index>`)."""

    def __init__(self, app: Any, index: int) -> None:
        self.app = app
        self.header = (HEADER, str(index).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), self.header]
            await send(message)

        await self.app(scope, receive, tagged)


def _server_class() -> Any:
    import uvicorn

    class WorkerServer(uvicorn.Server):  # type: ignore[misc]
        def __init__(self, config: Any, control: socket.socket, gateway: Gateway) -> None:
            super().__init__(config)
            self.control = control
            self.gateway = gateway
            self.chores: list[asyncio.Task[None]] = []

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.should_exit:
                return
            loop = asyncio.get_running_loop()
            self.chores = [
                asyncio.create_task(self._watch_supervisor()),
                asyncio.create_task(self._sync_metrics()),
            ]
            with contextlib.suppress(OSError):
                await loop.sock_sendall(self.control, b"ready\n")

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for chore in self.chores:
                chore.cancel()
            await super().shutdown(sockets)

        async def _watch_supervisor(self) -> None:
            try:
                data = await asyncio.get_running_loop().sock_recv(self.control, 64)
            except OSError:
                data = b""
            if not data:
                log.warning("the supervisor is gone: draining")
                self.should_exit = True

        async def _sync_metrics(self) -> None:
            # A scrape reads every worker's values; these two are otherwise set only on a scrape.
            metrics, writer = self.gateway.metrics, self.gateway.writer
            while True:
                metrics.records_dropped_total(writer.dropped)
                metrics.records_pending.set(writer.pending)
                await asyncio.sleep(METRICS_SYNC_S)

    return WorkerServer


def _leave(signum: int, frame: Any) -> None:
    # uvicorn re-raises the signal it drained on; leaving then is a clean exit, not a kill.
    raise SystemExit(0)


def run(
    config_path: str | None, host: str, port: int, control: socket.socket, alone: bool = False
) -> int:
    """Serve until told to stop; `alone`: no other worker has the record open yet."""
    from turnout.cli import _load
    from turnout.gateway import Gateway
    from turnout.server.app import App
    from turnout.server.serve import STARTUP_FAILURE, uvicorn_config

    me = worker_identity()
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s %(name)s [worker {me.index}]: %(message)s",
    )
    signal.signal(signal.SIGTERM, _leave)
    config = _load(config_path)
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, host=host))
    gateway = Gateway(config)
    gateway.writer.shared = not alone
    settings = uvicorn_config(WorkerHeader(App(gateway), me.index), config.server, host, port)
    # The supervisor says when each worker is up; uvicorn's own lines would repeat N times.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    sock = reuse_port_socket(host, port)
    control.setblocking(False)
    server = _server_class()(settings, control, gateway)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m turnout.server.worker")
    p.add_argument("--config")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--control-fd", type=int, required=True)
    p.add_argument("--alone", action="store_true", help="the first worker's first start")
    args = p.parse_args(argv)
    control = socket.socket(fileno=args.control_fd)
    return run(args.config, args.host, args.port, control, args.alone)


if __name__ == "__main__":
    sys.exit(main())
