"""mcp.lock: what a person approved, per server; and beside it, what the guard saw since.

The lock is JSON with sorted keys and one value per line, so `git diff` reads well. Changes the
guard observes but may not trust are written to `<lock>.pending` (not meant for version control);
`turnout mcp approve` moves them into the lock. Writers take an advisory file lock and replace
files atomically, so a proxy learning on first use and a person approving never tear a file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turnout.mcp.canonical import canonical_json, text_hash, tool_hash

LOCK_VERSION = 1


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(slots=True)
class Observation:
    """One server as the guard saw it: identity, handshake and tool definitions."""

    launch: dict[str, Any]
    package: dict[str, Any]
    server_info: dict[str, Any] | None = None
    instructions: str | None = None  # the text; the lock keeps only its hash
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> raw definition
    seen_at: str = field(default_factory=now_iso)


@dataclass(slots=True)
class ServerPin:
    launch: dict[str, Any]
    package: dict[str, Any]
    server_info: dict[str, Any] | None
    instructions: str | None  # sha256:… of the instructions text, or None
    tools: dict[str, dict[str, Any]]  # name -> {"sha256": …, "definition": …}
    egress: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # tool -> shapes
    pinned_at: str = field(default_factory=now_iso)

    @classmethod
    def of(cls, obs: Observation) -> ServerPin:
        return cls(
            launch=obs.launch,
            package=obs.package,
            server_info=obs.server_info,
            instructions=text_hash(obs.instructions),
            tools={name: pin_tool(d) for name, d in sorted(obs.tools.items())},
        )

    def tool_hash(self, name: str) -> str | None:
        entry = self.tools.get(name)
        return None if entry is None else str(entry["sha256"])

    def as_json(self) -> dict[str, Any]:
        return {
            "launch": self.launch,
            "package": self.package,
            "server_info": self.server_info,
            "instructions": self.instructions,
            "tools": self.tools,
            "egress": self.egress,
            "pinned_at": self.pinned_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerPin:
        return cls(
            launch=data.get("launch") or {},
            package=data.get("package") or {},
            server_info=data.get("server_info"),
            instructions=data.get("instructions"),
            tools=data.get("tools") or {},
            egress=data.get("egress") or {},
            pinned_at=data.get("pinned_at") or "",
        )


def pin_tool(definition: dict[str, Any]) -> dict[str, Any]:
    return {"sha256": tool_hash(definition), "definition": definition}


@dataclass(slots=True)
class Pending:
    """What the guard saw that the lock does not hold: the latest observation, new egress."""

    observation: Observation | None = None
    egress: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        obs = self.observation
        return {
            "observation": None
            if obs is None
            else {
                "launch": obs.launch,
                "package": obs.package,
                "server_info": obs.server_info,
                "instructions": obs.instructions,
                "tools": obs.tools,
                "seen_at": obs.seen_at,
            },
            "egress": self.egress,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pending:
        o = data.get("observation")
        obs = None
        if o:
            obs = Observation(
                launch=o.get("launch") or {},
                package=o.get("package") or {},
                server_info=o.get("server_info"),
                instructions=o.get("instructions"),
                tools=o.get("tools") or {},
                seen_at=o.get("seen_at") or "",
            )
        return cls(observation=obs, egress=data.get("egress") or {})


@dataclass(slots=True)
class LockFile:
    path: Path
    servers: dict[str, ServerPin] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)

    @property
    def pending_path(self) -> Path:
        return self.path.with_name(self.path.name + ".pending")

    @classmethod
    def load(cls, path: Path) -> LockFile:
        lock = cls(Path(path))
        data = _read(lock.path)
        if data:
            version = data.get("version")
            if version != LOCK_VERSION:
                raise ValueError(
                    f"{path}: lock version {version!r}; this turnout reads {LOCK_VERSION}"
                )
            lock.servers = {
                name: ServerPin.from_json(entry)
                for name, entry in (data.get("servers") or {}).items()
            }
        pending = _read(lock.pending_path) or {}
        lock.pending = {n: Pending.from_json(p) for n, p in (pending.get("servers") or {}).items()}
        return lock

    def save(self) -> None:
        servers = {name: pin.as_json() for name, pin in sorted(self.servers.items())}
        _write(self.path, {"version": LOCK_VERSION, "servers": servers})
        live = {
            n: p.as_json() for n, p in sorted(self.pending.items()) if p.observation or p.egress
        }
        if live:
            _write(self.pending_path, {"version": LOCK_VERSION, "servers": live})
        elif self.pending_path.exists():
            self.pending_path.unlink()

    def stamp(self) -> tuple[float, float]:
        """Changes when either file changes: a running proxy rereads the lock on a new stamp."""
        return (_mtime(self.path), _mtime(self.pending_path))


@contextlib.contextmanager
def editing(path: Path) -> Iterator[LockFile]:
    """Load, let the caller change, save: under an exclusive advisory lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    guard = path.with_name(path.name + ".lck")
    with open(guard, "a") as fd:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            lock = LockFile.load(path)
            yield lock
            lock.save()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def same(a: Any, b: Any) -> bool:
    return canonical_json(a) == canonical_json(b)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns / 1e9
    except FileNotFoundError:
        return 0.0


def _read(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
