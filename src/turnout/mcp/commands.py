"""What `turnout mcp lock`, `approve` and `diff` do, apart from how they are called."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turnout.mcp.changes import Change, View, compare
from turnout.mcp.config import GuardConfig, ServerSpec
from turnout.mcp.guard import screen
from turnout.mcp.identity import describe_identity
from turnout.mcp.lockfile import LockFile, Observation, Pending, ServerPin, editing, pin_tool
from turnout.mcp.snapshot import observe


@dataclass(slots=True)
class Report:
    lines: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.lines.append(text)


async def _observe(spec: ServerSpec, report: Report, timeout: float) -> Observation | None:
    try:
        return await observe(spec, timeout=timeout, errlog=_quiet())
    except Exception as exc:  # a server that does not start is reported, the others go on
        report.errors.append(f"{spec.name}: could not connect: {_why(exc)}")
        return None


async def lock_servers(
    config: GuardConfig, names: list[str], *, update: bool, timeout: float = 60.0
) -> Report:
    """Pin servers that the lock does not hold; report (or with `update`, re-pin) the rest."""
    report = Report()
    for spec in _selected(config, names):
        obs = await _observe(spec, report, timeout)
        if obs is None:
            continue
        with editing(config.lock_path) as lock:
            pin = lock.servers.get(spec.name)
            if pin is None:
                trusted, held = screen(obs)
                lock.servers[spec.name] = ServerPin.of(trusted)
                report.say(f"{spec.name}: pinned {_summary(trusted)}")
                if held:
                    lock.pending.setdefault(spec.name, Pending()).observation = obs
                for tool, why in held.items():
                    report.say(f"  held back `{tool}` (approve it to trust it anyway): {why}")
                continue
            changes = compare(spec.name, View.of_pin(pin), View.of_observation(obs, {}))
            if not changes:
                report.say(f"{spec.name}: unchanged ({len(obs.tools)} tools)")
            elif update:
                fresh = ServerPin.of(obs)
                fresh.egress = pin.egress
                lock.servers[spec.name] = fresh
                lock.pending.pop(spec.name, None)
                report.say(f"{spec.name}: re-pinned")
                report.lines += [f"  {c.text}" for c in changes]
            else:
                report.changes += changes
                report.say(
                    f"{spec.name}: changed since it was pinned (not written; --update to pin):"
                )
                report.lines += [f"  {c.text}" for c in changes]
    return report


async def approve(
    config: GuardConfig, targets: list[str], *, live: bool = False, timeout: float = 60.0
) -> Report:
    report = Report()
    for target in targets:
        server, _, tool = target.partition(":")
        spec = config.server(server)
        lock = LockFile.load(config.lock_path)
        pending = lock.pending.get(server)
        obs = None if live or pending is None else pending.observation
        if obs is None and (live or not (pending and pending.egress)):
            obs = await _observe(spec, report, timeout)
            if obs is None:
                continue
        with editing(config.lock_path) as lock:
            before = lock.servers.get(server)
            pending = lock.pending.get(server) or Pending()
            if not tool:
                _approve_server(lock, server, obs, pending)
            elif before is None:
                report.errors.append(f"{server}: not pinned yet; approve the server first")
                continue
            else:
                _approve_tool(lock, server, tool, obs, pending, report)
            after = lock.servers[server]
            old = View.of_pin(before) if before else View()
            new = View.of_pin(after)
            words = [c.text for c in compare(server, old, new)] if before else ["pinned"]
            report.say(f"approved {target}: " + ("; ".join(words) or "nothing had changed"))
            if tool and obs is not None and before and after.package != obs.package:
                report.say(f"  note: the package change still blocks {server}; approve `{server}`")
    return report


def _approve_server(lock: LockFile, server: str, obs: Observation | None, pending: Pending) -> None:
    before = lock.servers.get(server)
    pin = ServerPin.of(obs) if obs is not None else before
    assert pin is not None
    pin.egress = dict(before.egress) if before else {}
    for tool, shapes in pending.egress.items():
        pin.egress[tool] = _merge(pin.egress.get(tool, []), shapes)
    lock.servers[server] = pin
    lock.pending.pop(server, None)


def _approve_tool(
    lock: LockFile,
    server: str,
    tool: str,
    obs: Observation | None,
    pending: Pending,
    report: Report,
) -> None:
    pin = lock.servers[server]
    if obs is not None:
        if tool in obs.tools:
            pin.tools[tool] = pin_tool(obs.tools[tool])
        elif tool in pin.tools:
            del pin.tools[tool]
        else:
            report.errors.append(f"{server}: no tool `{tool}` was seen")
    if tool in pending.egress:
        pin.egress[tool] = _merge(pin.egress.get(tool, []), pending.egress.pop(tool))
    still = pending.observation
    if still is not None:
        left = [
            c
            for c in compare(server, View.of_pin(pin), View.of_observation(still, {}))
            if c.blocking
        ]
        if not left:
            pending.observation = None
    lock.pending[server] = pending


async def diff(
    config: GuardConfig | None,
    targets: list[str],
    *,
    live: bool = False,
    lock_path: Path | None = None,
    timeout: float = 60.0,
) -> Report:
    report = Report()
    if len(targets) == 2 and all(Path(t).is_file() for t in targets):
        before, after = LockFile.load(Path(targets[0])), LockFile.load(Path(targets[1]))
        for name in sorted(set(before.servers) | set(after.servers)):
            if name not in after.servers:
                report.say(f"{name}: server removed")
            elif name not in before.servers:
                report.say(f"{name}: new server ({describe_identity(after.servers[name].package)})")
            else:
                a, b = View.of_pin(before.servers[name]), View.of_pin(after.servers[name])
                found = compare(name, a, b)
                _tell(report, name, found)
        return report
    if config is None:
        raise FileNotFoundError("no guard config: pass --config (or two lock files to compare)")
    lock = LockFile.load(lock_path or config.lock_path)
    for spec in _selected(config, targets):
        pin = lock.servers.get(spec.name)
        pending = lock.pending.get(spec.name) or Pending()
        if live:
            obs = await _observe(spec, report, timeout)
            if obs is None:
                continue
        else:
            obs = pending.observation
        if pin is None:
            report.say(f"{spec.name}: not pinned yet" + (f" ({_summary(obs)})" if obs else ""))
            continue
        old = View.of_pin(pin)
        if obs is not None:
            new = View.of_observation(obs, pending.egress)
        else:
            new = View.of_pin(pin)
            new.egress = pending.egress
        _tell(report, spec.name, compare(spec.name, old, new))
    return report


def _tell(report: Report, name: str, changes: list[Change]) -> None:
    report.changes += changes
    if not changes:
        report.say(f"{name}: no changes")
        return
    report.say(f"{name}:")
    for c in changes:
        mark = "!" if c.blocking else " "
        report.say(f" {mark} {c.text}")


def _selected(config: GuardConfig, names: list[str]) -> list[ServerSpec]:
    if not names:
        return list(config.servers.values())
    return [config.server(n) for n in names]


def _summary(obs: Observation) -> str:
    return f"{len(obs.tools)} tools, {describe_identity(obs.package)}"


def _merge(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = list(a)
    out += [s for s in b if s not in out]
    return out


def _why(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_why(e) for e in exc.exceptions)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _quiet() -> Any:
    return sys.stderr
