"""What `turnout mcp lock`, `approve` and `diff` do, apart from how they are called."""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turnout.mcp.canonical import canonical_json
from turnout.mcp.changes import Change, View, compare, egress_changes
from turnout.mcp.config import GuardConfig, ServerSpec
from turnout.mcp.egress.recorder import EgressRecorder, Verdict
from turnout.mcp.egress.watch import BACKGROUND
from turnout.mcp.identity import describe_identity
from turnout.mcp.lockfile import LockFile, Observation, Pending, ServerPin, editing, pin_tool
from turnout.mcp.scanner.rules import Finding, scan_instructions, scan_tool
from turnout.mcp.snapshot import observe


@dataclass(slots=True)
class Report:
    lines: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # what was asked for and not approved

    def say(self, text: str) -> None:
        self.lines.append(text)


INSTRUCTIONS = "(instructions)"  # the server's instructions, where findings name a tool


async def _observe(
    spec: ServerSpec, report: Report, timeout: float, startup: list[dict[str, Any]] | None = None
) -> Observation | None:
    """With `startup`, what the server sends while it starts and lists is let through and
    collected there (a person running `lock` is approving this server as it is now)."""
    print(f"{spec.name}: starting and listing it …", file=sys.stderr, flush=True)  # progress
    recorder: EgressRecorder | None = None
    if startup is not None and spec.transport == "stdio" and spec.egress != "off":

        def collect(shape: dict[str, Any]) -> Verdict:
            if shape not in startup:
                startup.append(shape)
            return Verdict(True, "lock")

        recorder = EgressRecorder(collect)
        await recorder.start()
    try:
        env = recorder.env(spec.env.get("NODE_OPTIONS", "")) if recorder else None
        return await observe(spec, timeout=timeout, env_extra=env, errlog=_quiet())
    except Exception as exc:  # a server that does not start is reported, the others go on
        report.errors.append(f"{spec.name}: could not connect: {_why(exc)}")
        return None
    finally:
        if recorder is not None:
            await recorder.stop()


async def lock_servers(
    config: GuardConfig,
    names: list[str],
    *,
    update: bool,
    accept_findings: bool = False,
    timeout: float = 60.0,
) -> Report:
    """Pin servers that the lock does not hold; report (or with `update`, re-pin) the rest.

    What a server sends while it starts is pinned with it; what each tool sends cannot be seen
    without calling it, so a tool's first outbound request is held for approval by the proxy."""
    report = Report()
    for spec in _selected(config, names):
        startup: list[dict[str, Any]] = []
        obs = await _observe(spec, report, timeout, startup)
        if obs is None:
            continue
        seen_egress = {BACKGROUND: startup} if startup else {}
        with editing(config.lock_path) as lock:
            pin = lock.servers.get(spec.name)
            if pin is None:
                fresh, blocked, told = _screened_pin(spec.name, obs, None, accept_findings, report)
                fresh.egress = {BACKGROUND: sorted(startup, key=canonical_json)}
                lock.servers[spec.name] = fresh
                tools = f"{len(fresh.tools)} tools, {describe_identity(obs.package)}"
                report.say(f"{spec.name}: pinned {tools}")
                report.lines += told
                for text in egress_changes(BACKGROUND, [], startup):
                    report.say(f"  pinned: {text}")
                if blocked:
                    lock.pending.setdefault(spec.name, Pending()).observation = obs
                continue
            changes = compare(spec.name, View.of_pin(pin), View.of_observation(obs, seen_egress))
            if not changes:
                report.say(f"{spec.name}: unchanged ({len(obs.tools)} tools)")
            elif update:
                report.say(f"{spec.name}: re-pinned")
                report.lines += [f"  {c.text}" for c in changes]
                fresh, blocked, told = _screened_pin(spec.name, obs, pin, accept_findings, report)
                report.lines += told
                fresh.egress = dict(pin.egress)
                fresh.egress[BACKGROUND] = _merge(pin.egress.get(BACKGROUND, []), startup)
                lock.servers[spec.name] = fresh
                if blocked:
                    lock.pending.setdefault(spec.name, Pending()).observation = obs
                else:
                    lock.pending.pop(spec.name, None)
            else:
                report.changes += changes
                report.say(
                    f"{spec.name}: changed since it was pinned (not written; --update to pin):"
                )
                report.lines += [f"  {c.text}" for c in changes]
    return report


async def approve(
    config: GuardConfig,
    targets: list[str],
    *,
    live: bool = False,
    accept_findings: bool = False,
    timeout: float = 60.0,
) -> Report:
    """Pin what the guard holds back. What is pinned is scanned again first: a definition the
    scanner calls poisoned (a high finding) stays held unless `accept_findings`."""
    report = Report()
    for target in targets:
        server, _, tool = target.partition(":")
        spec = config.server(server)
        lock = LockFile.load(config.lock_path)
        pending = lock.pending.get(server)
        obs = None if live or pending is None else pending.observation
        unpinned = server not in lock.servers
        if obs is None and (live or unpinned or not (pending and pending.egress)):
            obs = await _observe(spec, report, timeout)
            if obs is None:
                continue
        with editing(config.lock_path) as lock:
            # A copy: approving changes the pin in place, and the report compares before/after.
            before = copy.deepcopy(lock.servers.get(server))
            pending = lock.pending.get(server) or Pending()
            if not tool:
                told = _approve_server(lock, server, obs, pending, accept_findings, report)
            elif before is None:
                report.errors.append(f"{server}: not pinned yet; approve the server first")
                continue
            else:
                told = _approve_tool(lock, server, tool, obs, pending, accept_findings, report)
            after = lock.servers[server]
            old = View.of_pin(before) if before else View()
            new = View.of_pin(after)
            words = [c.text for c in compare(server, old, new)] if before else ["pinned"]
            if target in report.held:
                report.say(f"not approved {target}:")
            else:
                report.say(f"approved {target}: " + ("; ".join(words) or "nothing had changed"))
            report.lines += told
            if tool and obs is not None and before and after.package != obs.package:
                report.say(f"  note: the package change still blocks {server}; approve `{server}`")
    return report


def _approve_server(
    lock: LockFile,
    server: str,
    obs: Observation | None,
    pending: Pending,
    accept: bool,
    report: Report,
) -> list[str]:
    before = lock.servers.get(server)
    blocked: set[str] = set()
    told: list[str] = []
    if obs is not None:
        pin, blocked, told = _screened_pin(server, obs, before, accept, report)
    else:
        assert before is not None
        pin = copy.deepcopy(before)
    pin.egress = dict(before.egress) if before else {}
    for tool, shapes in pending.egress.items():
        pin.egress[tool] = _merge(pin.egress.get(tool, []), shapes)
    lock.servers[server] = pin
    if blocked:
        lock.pending[server] = Pending(observation=obs)
    else:
        lock.pending.pop(server, None)
    return told


def _approve_tool(
    lock: LockFile,
    server: str,
    tool: str,
    obs: Observation | None,
    pending: Pending,
    accept: bool,
    report: Report,
) -> list[str]:
    pin = lock.servers[server]
    told: list[str] = []
    if obs is not None and tool != BACKGROUND:
        if tool in obs.tools:
            flagged = _findings(server, obs, [tool])
            told = _tell_findings(report, server, flagged, accept)
            if _blocking(flagged) and not accept:
                return told
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
    return told


def _screened_pin(
    server: str, obs: Observation, before: ServerPin | None, accept: bool, report: Report
) -> tuple[ServerPin, set[str], list[str]]:
    """The pin of `obs`, except for what the scanner calls poisoned (unless `accept`): those
    keep what was pinned before (or stay out), and are returned as held, with the words."""
    flagged = _findings(server, obs, list(obs.tools), instructions=True)
    told = _tell_findings(report, server, flagged, accept)
    blocked = set() if accept else {name for name, fs in flagged.items() if _blocking(fs)}
    pin = ServerPin.of(obs)
    for name in blocked:
        if name == INSTRUCTIONS:
            pin.instructions = before.instructions if before else None
        elif before is not None and name in before.tools:
            pin.tools[name] = before.tools[name]
        else:
            pin.tools.pop(name, None)
    return pin, blocked, told


def _findings(
    server: str, obs: Observation, tools: list[str], *, instructions: bool = False
) -> dict[str, list[Finding]]:
    siblings = set(obs.tools) | {str(t.get("title") or "") for t in obs.tools.values()}
    found: dict[str, list[Finding]] = {}
    for name in tools:
        hits = [f for f in scan_tool(obs.tools[name], server, siblings) if f.severity != "low"]
        if hits:
            found[name] = hits
    if instructions and obs.instructions:
        hits = [
            f for f in scan_instructions(obs.instructions, server, siblings) if f.severity != "low"
        ]
        if hits:
            found[INSTRUCTIONS] = hits
    return found


def _blocking(findings: list[Finding] | dict[str, list[Finding]]) -> bool:
    items = findings if isinstance(findings, list) else [f for fs in findings.values() for f in fs]
    return any(f.severity == "high" for f in items)


def _tell_findings(
    report: Report, server: str, flagged: dict[str, list[Finding]], accept: bool
) -> list[str]:
    """The findings in words; what they hold back is added to `report.held`."""
    lines: list[str] = []
    for name, findings in flagged.items():
        what = "the instructions" if name == INSTRUCTIONS else f"`{name}`"
        if _blocking(findings) and not accept:
            report.held.append(f"{server}:{name}")
            lines.append(
                f"  held back {what}: the scanner flags it (review with `turnout mcp diff "
                f"{server}`; approve anyway with --accept-findings):"
            )
        elif _blocking(findings):
            lines.append(f"  approved {what} despite the scanner's findings:")
        else:
            lines.append(f"  note: the scanner flags {what}:")
        lines += [f"    {f.severity.upper()} {f.rule} ({f.where}): {f.message}" for f in findings]
    return lines


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
        changes = compare(spec.name, old, new)
        _tell(report, spec.name, changes)
        if obs is not None:
            # What the scanner says about each definition a person is asked to approve.
            asked = sorted({c.tool for c in changes if c.tool and c.tool in obs.tools})
            flagged = _findings(spec.name, obs, asked)
            for tool, findings in flagged.items():
                report.say(f"   the scanner flags `{tool}`:")
                report.lines += [
                    f"     {f.severity.upper()} {f.rule} ({f.where}): {f.message}" for f in findings
                ]
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
