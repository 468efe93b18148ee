"""`turnout serve --workers N`: a supervisor that runs N gateway processes on one port.

Each worker (`server/worker.py`) has its own event loop and gateway and listens with
SO_REUSEPORT; the kernel spreads connections across them. They share routing state through
Redis (`state.url`, required), write the one record, and keep their metrics in a directory of
this run, so a scrape of any worker counts the whole group. The supervisor validates the config
once, starts worker 0 alone (an error at start-up is then printed once, not N times) and the
others after it is ready, restarts a worker that dies with a growing pause, and on SIGTERM or
SIGINT drains them all (a second signal cuts the drain short).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass

from turnout.config import Config
from turnout.server.worker import ENV_COUNT, ENV_INDEX, reuse_port_socket
from turnout.telemetry.metrics import MULTIPROCESS_DIR

log = logging.getLogger("turnout.workers")

START_ATTEMPTS = 3  # failed starts in a row of one worker before the supervisor gives up
FIRST_PAUSE_S = 0.5  # before restarting a worker; doubles with each crash in a row …
MAX_PAUSE_S = 30.0  # … up to this
STABLE_S = 60.0  # a worker up this long has its crash count forgiven
DRAIN_S = 30.0  # after SIGTERM, how long workers have before they are killed


def refusal(config: Config, workers: int, recording: bool) -> str | None:
    """Why this config cannot run `workers` processes; None if it can."""
    if workers <= 1:
        return None
    if config.state.url is None:
        return (
            f"--workers {workers} needs shared state: set state.url (redis://…) in the config. "
            "Without it each worker would enforce concurrency caps and in-flight limits alone, "
            f"letting {workers}x through"
        )
    if recording:
        return f"--record cannot be used with --workers {workers}: one cassette has one writer"
    return None


def caveats(config: Config, auth: str, workers: int) -> list[str]:
    """What this config has each worker decide alone: logged once at start, so it is known."""
    # Key limits, canary stages, the shadow budget, fingerprint probes and retention are shared or
    # decided once by the fleet's leader, through Redis, which more than one worker needs.
    out = []
    if config.privacy.sticky_conversations > 0 and any(
        m.privacy != "off" for m in config.models.values()
    ):
        out.append(
            "a conversation that carried sensitive data stays local by the memory of the worker "
            "that saw it (each turn is still scanned wherever it lands)"
        )
    return out


@dataclass(slots=True)
class Slot:
    """One worker's place: the process in it now and how its starts have gone."""

    index: int
    proc: asyncio.subprocess.Process | None = None
    failed_starts: int = 0  # in a row, each before the worker said ready
    crashes: int = 0  # in a row, each after a short life
    ready_once: bool = False


class Supervisor:
    def __init__(self, config_path: str | None, host: str, port: int, count: int) -> None:
        self.config_path = config_path
        self.host = host
        self.port = port
        self.count = count
        self.slots = [Slot(i) for i in range(count)]
        self.metrics_dir = ""
        self.stopping = False
        self.failed: str | None = None
        self._stop = asyncio.Event()
        self._first_ready = asyncio.Event()
        self._ready = 0
        self._signals = 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self.metrics_dir = tempfile.mkdtemp(prefix="turnout-metrics-")
        try:
            log.info("starting %d workers on %s:%d", self.count, self.host, self.port)
            first = asyncio.create_task(self._keep(self.slots[0]))
            ready = asyncio.create_task(self._first_ready.wait())
            await asyncio.wait({first, ready}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            others = [
                asyncio.create_task(self._keep(s)) for s in self.slots[1:] if not self.stopping
            ]
            await asyncio.gather(first, *others)
        finally:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        if self.failed is not None:
            log.error("%s; stopped", self.failed)
            return 1
        log.info("all %d workers stopped", self.count)
        return 0

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("%s: draining %d workers", signal.Signals(sig).name, self.count)
            self._stop_all(signal.SIGTERM)
        else:
            log.warning("second signal: workers stop without waiting for open requests")
            self._send(signal.SIGINT)

    def _stop_all(self, sig: int) -> None:
        self.stopping = True
        self._stop.set()
        self._send(sig)

    def _send(self, sig: int) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(sig)

    async def _keep(self, slot: Slot) -> None:
        """Run the slot's worker until the supervisor stops, restarting it when it dies."""
        while not self.stopping:
            ready, code, lived = await self._once(slot)
            if self.stopping:
                return
            if not ready:
                slot.failed_starts += 1
                if slot.failed_starts >= START_ATTEMPTS or not self.slots[0].ready_once:
                    self.failed = (
                        f"worker {slot.index} failed to start {slot.failed_starts} time(s) in a "
                        f"row ({_exit(code)})"
                    )
                    self._stop_all(signal.SIGTERM)
                    return
            else:
                slot.failed_starts = 0
            slot.crashes = 1 if lived >= STABLE_S else slot.crashes + 1
            pause = min(MAX_PAUSE_S, FIRST_PAUSE_S * 2 ** (slot.crashes - 1))
            log.warning(
                "worker %d %s (%s); restarting it in %.1f s",
                slot.index,
                "stopped unexpectedly" if ready else "failed to start",
                _exit(code),
                pause,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), pause)

    async def _once(self, slot: Slot) -> tuple[bool, int, float]:
        """One life of a worker: whether it became ready, its exit code, how long it lived."""
        ours, theirs = socket.socketpair()
        try:
            proc = slot.proc = await asyncio.create_subprocess_exec(
                *self._command(theirs.fileno(), alone=not self._first_ready.is_set()),
                pass_fds=(theirs.fileno(),),
                env=self._env(slot.index),
                process_group=0,  # a terminal's Ctrl-C reaches the supervisor alone
            )
        finally:
            theirs.close()
        started = time.monotonic()
        reader, writer = await asyncio.open_connection(sock=ours)
        try:
            ready = await reader.readline() == b"ready\n"
            if ready:
                self._announce(slot, proc.pid)
            code = await self._wait(proc)
        finally:
            writer.close()
        _forget(proc.pid, self.metrics_dir)
        return ready, code, time.monotonic() - started

    async def _wait(self, proc: asyncio.subprocess.Process) -> int:
        wait = asyncio.ensure_future(proc.wait())
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({wait, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not wait.done():  # draining: the worker gets DRAIN_S, then it is killed
            try:
                await asyncio.wait_for(asyncio.shield(wait), DRAIN_S)
            except TimeoutError:
                log.error("worker (pid %d) did not drain within %g s: killed", proc.pid, DRAIN_S)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        return await wait

    def _announce(self, slot: Slot, pid: int) -> None:
        again = slot.ready_once
        slot.ready_once = True
        log.info("worker %d ready%s (pid %d)", slot.index, " again" if again else "", pid)
        if not again:
            self._first_ready.set()
            self._ready += 1
            if self._ready == self.count:
                log.info("ready: %d workers on %s:%d", self.count, self.host, self.port)

    def _command(self, control_fd: int, alone: bool) -> list[str]:
        command = [sys.executable, "-m", "turnout.server.worker", "--host", self.host]
        command += ["--port", str(self.port), "--control-fd", str(control_fd)]
        command += ["--alone"] if alone else []
        return command + (["--config", self.config_path] if self.config_path else [])

    def _env(self, index: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update({ENV_INDEX: str(index), ENV_COUNT: str(self.count)})
        env[MULTIPROCESS_DIR] = self.metrics_dir
        return env


def _exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _forget(pid: int, metrics_dir: str) -> None:
    """A dead worker's live gauges leave the scrape; its counters stay in the totals."""
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid, metrics_dir)


def serve_workers(
    config: Config, config_path: str | None, host: str, port: int, n: int, auth: str
) -> int:
    """Run `n` workers until a signal stops them; the exit code of `turnout serve`."""
    for caveat in caveats(config, auth, n):
        log.warning("with %d workers, %s", n, caveat)
    try:
        # Held, bound and not listening, for the supervisor's life: port 0 becomes one port for
        # all workers, and a port already taken is one message here rather than one per worker.
        reserved = reuse_port_socket(host, port)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    with reserved:
        bound = reserved.getsockname()[1]
        return asyncio.run(Supervisor(config_path, host, bound, n).run())
