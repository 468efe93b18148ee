"""Nothing the benchmark starts may outlive it, and what its servers cost is read from /proc
by the driver rather than taken from the servers' own word."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway_overhead.common import CLK_TCK, LOGS, PAGE, log


def _pdeathsig() -> None:
    """In the child: get SIGTERM when the driver dies, so nothing outlives it."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


class Processes:
    """Starts servers in their own sessions and stops exactly those, by process group."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> Proc:
        LOGS.mkdir(parents=True, exist_ok=True)
        log_path = LOGS / f"{name}.log"
        fh = log_path.open("wb")
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_pdeathsig,
        )
        fh.close()
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        log(f"started {name} pid {popen.pid}: {shlex.join(argv)}")
        return proc

    def stop(self, proc: Proc, timeout: float = 10.0) -> None:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait(5)
        else:
            # the leader is gone; make sure nothing of its group is left behind
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            try:
                self.stop(proc)
                log(f"stopped {proc.name}")
            except Exception as exc:  # keep stopping the others
                log(f"could not stop {proc.name}: {exc}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(proc: Proc, url: str, timeout: float) -> float:
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout:
        if not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode} before it was ready; "
                f"log tail:\n{proc.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
                last = f"status {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"status {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name} not ready at {url} after {timeout:.0f}s ({last})")


# ------------------------------------------------------------------------- /proc reads


def _stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/PID/stat after the command name) of every live process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        yield int(entry), stat[stat.rindex(")") + 2 :].split()


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for pid, f in _stats():
        kids.setdefault(int(f[1]), []).append(pid)
    return kids


def process_tree(pid: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its live descendants (all threads), in seconds."""
    total = 0
    for p in process_tree(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def rss_bytes(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            statm = Path(f"/proc/{p}/statm").read_text().split()
        except OSError:
            continue
        total += int(statm[1]) * PAGE
    return total


def all_process_cpu() -> dict[tuple[int, int], float]:
    """CPU seconds of every process on the machine, keyed by (pid, start time)."""
    return {(pid, int(f[19])): (int(f[11]) + int(f[12])) / CLK_TCK for pid, f in _stats()}


def other_cpu_seconds(before: dict[tuple[int, int], float], mine: set[int]) -> float:
    """CPU used since `before` by processes that are not this driver's tree."""
    total = 0.0
    for key, cpu in all_process_cpu().items():
        if key[0] in mine:
            continue
        total += cpu - before.get(key, 0.0)
    return total


def system_busy_seconds() -> float:
    """Busy CPU time of the whole machine, all cores (from /proc/stat), in seconds."""
    with open("/proc/stat") as fh:
        parts = fh.readline().split()[1:]
    vals = [int(x) for x in parts]
    user, nice, system, _idle, _iowait, irq, softirq, steal = vals[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def children_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime
