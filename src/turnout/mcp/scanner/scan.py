"""Scan the servers of client configs: start each one in a sandbox, list it, apply the rules.

The sandbox: a server gets the SDK's short list of safe variables (PATH, HOME, …), the `env` its
config entry sets and nothing else from the scanner's environment unless `--pass-env` names it;
its outbound HTTP requests are refused and reported (a server that phones home while it is only
being listed is a finding). Remote (HTTP) servers are not contacted: the scan stays on this machine.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from turnout.mcp.config import ServerSpec, load_guard_config
from turnout.mcp.egress.recorder import EgressRecorder, Verdict
from turnout.mcp.identity import describe_identity
from turnout.mcp.lockfile import Observation
from turnout.mcp.scanner.rules import SEVERITIES, Finding, scan_instructions, scan_tool
from turnout.mcp.snapshot import observe

__all__ = ["SEVERITIES", "ScanResult", "scan_configs", "scan_observations"]


@dataclass(slots=True)
class ScanResult:
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def scan_configs(
    paths: list[Path],
    *,
    only: list[str] | None = None,
    timeout: float = 60.0,
    pass_env: tuple[str, ...] = (),
) -> ScanResult:
    result = ScanResult()
    observed: dict[str, Observation] = {}
    outbound: dict[str, list[str]] = {}
    for path in paths:
        config = load_guard_config(path)
        for name, spec in config.servers.items():
            if only and name not in only:
                continue
            if spec.transport == "http":
                result.servers[name] = {"status": "skipped", "why": "remote server: not contacted"}
                continue
            print(f"{name}: starting and listing it …", file=sys.stderr, flush=True)  # progress
            obs, calls = await _observe_sandboxed(replace(spec, pass_env=pass_env), timeout, result)
            if obs is not None:
                observed[name] = obs
                outbound[name] = calls
    scanned = scan_observations(observed)
    for name, calls in outbound.items():
        for call in calls:
            scanned.findings.append(
                Finding(
                    "high",
                    "startup-egress",
                    name,
                    None,
                    "process",
                    f"the server tried to reach {call} while it was only being started and listed",
                )
            )
    scanned.servers = {**result.servers, **scanned.servers}
    scanned.errors = result.errors
    return scanned


async def _observe_sandboxed(
    spec: ServerSpec, timeout: float, result: ScanResult
) -> tuple[Observation | None, list[str]]:
    calls: list[str] = []

    def refuse(shape: dict[str, Any]) -> Verdict:
        calls.append(f"{shape.get('method')} {shape.get('host')}{shape.get('path') or ''}")
        return Verdict(False, "turnout mcp scan allows no network access")

    recorder = EgressRecorder(refuse)
    await recorder.start()
    try:
        obs = await observe(spec, timeout=timeout, env_extra=recorder.env())
    except Exception as exc:
        result.errors.append(f"{spec.name}: could not start and list it: {_why(exc)}")
        result.servers[spec.name] = {"status": "error", "why": _why(exc)}
        return None, calls
    finally:
        await recorder.stop()
    return obs, calls


def scan_observations(observed: dict[str, Observation]) -> ScanResult:
    result = ScanResult()
    owners: dict[str, list[str]] = {}
    for name, obs in observed.items():
        for tool in obs.tools:
            owners.setdefault(tool, []).append(name)
    for name, obs in observed.items():
        siblings = set(obs.tools) | {str(t.get("title") or "") for t in obs.tools.values()}
        result.servers[name] = {
            "status": "ok",
            "tools": len(obs.tools),
            "package": describe_identity(obs.package),
        }
        if obs.instructions:
            result.findings += scan_instructions(obs.instructions, name, siblings)
        for tool, definition in obs.tools.items():
            result.findings += scan_tool(definition, name, siblings)
            others = [s for s in owners[tool] if s != name]
            if others:
                result.findings.append(
                    Finding(
                        "medium",
                        "tool-name-collision",
                        name,
                        tool,
                        "name",
                        f"servers {', '.join(others)} offer a tool of the same name; "
                        "a client may call the wrong one",
                    )
                )
            result.findings += _foreign_mentions(name, tool, definition, owners)
    result.findings.sort(key=lambda f: (-SEVERITIES.index(f.severity), f.server, f.tool or ""))
    return result


def _foreign_mentions(
    server: str, tool: str, definition: dict[str, Any], owners: dict[str, list[str]]
) -> list[Finding]:
    """A description that names another server's tool is trying to steer how it is used."""
    text = str(definition.get("description") or "")
    out = []
    for other, servers in owners.items():
        if server in servers or not re.search(r"[_-]", other) or len(other) < 5:
            continue  # plain words ("add", "echo") would match ordinary prose
        if re.search(rf"(?<![\w-]){re.escape(other)}(?![\w-])", text):
            out.append(
                Finding(
                    "high",
                    "cross-server-reference",
                    server,
                    tool,
                    "description",
                    f"mentions `{other}`, a tool of server {', '.join(servers)} (shadowing)",
                )
            )
    return out


def _why(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_why(e) for e in exc.exceptions)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
