"""The trust decisions for one server: compare what it shows with what a person approved.

Fail closed: a tool the lock does not hold, or holds with another hash, is hidden and refused;
a package identity that differs from the lock blocks the whole server. The guard writes what it
saw to the pending file so that `turnout mcp diff` can show it and `approve` can pin it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from turnout.mcp.canonical import canonical_json, text_hash, tool_hash
from turnout.mcp.changes import View, compare, package_change
from turnout.mcp.config import ServerSpec
from turnout.mcp.lockfile import LockFile, Observation, Pending, ServerPin, editing, same

log = logging.getLogger("turnout.mcp.guard")

# MCP leaves -32000..-32019 to implementations; the SDK uses -32000 and -32001 itself.
GUARD_REFUSED = -32010


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: (
        str  # unapproved_tool | changed_tool | unknown_tool | package_changed | unpinned | policy
    )
    message: str

    def error(self, server: str, tool: str | None = None) -> dict[str, Any]:
        target = f"{server}:{tool}" if tool else server
        return {
            "code": GUARD_REFUSED,
            "message": self.message,
            "data": {
                "turnout": {
                    "reason": self.reason,
                    "server": server,
                    **({"tool": tool} if tool else {}),
                    "review": f"turnout mcp diff {server}",
                    "approve": f"turnout mcp approve {target}",
                }
            },
        }


class Guard:
    """Shared by every session of one server in a proxy process."""

    def __init__(self, spec: ServerSpec, lock_path: Any):
        self.spec = spec
        self.name = spec.name
        self.lock = LockFile.load(lock_path)
        self._stamp = self.lock.stamp()
        self._holds: set[tuple[str | None, str, str]] = set()  # recorded: (tool, what, reason)

    # -- the lock, reread when a person approves something --------------------------------------

    def refresh(self) -> bool:
        stamp = LockFile(self.lock.path).stamp()
        if stamp == self._stamp:
            return False
        self.lock = LockFile.load(self.lock.path)
        self._stamp = stamp
        return True

    @property
    def pin(self) -> ServerPin | None:
        return self.lock.servers.get(self.name)

    # -- whole-server decisions -------------------------------------------------------------------

    def server_refusal(self, package: dict[str, Any]) -> Refusal | None:
        """Before launch: is this code the code that was approved?"""
        pin = self.pin
        if pin is None:
            if self.spec.unpinned == "block":
                return Refusal(
                    "unpinned",
                    f"turnout: server '{self.name}' is not in the lock and this guard does not "
                    f"trust on first use; run `turnout mcp lock {self.name}` to pin it",
                )
            return None
        if package.get("installed") is False and pin.package.get("installed") is not False:
            return Refusal(
                "package_unverifiable",
                f"turnout: server '{self.name}' is blocked: {package.get('name')} is not installed "
                "here, so the code npx would fetch cannot be checked against the lock before it "
                f"runs. Install the pinned version ({pin.package.get('version')}) or pin it in "
                "the server's args",
            )
        if pin.package and not same(pin.package, package):
            change = package_change(pin.package, package)
            return Refusal(
                "package_changed",
                f"turnout: server '{self.name}' is blocked: {change} is not approved. Review "
                f"with `turnout mcp diff {self.name}`, then `turnout mcp approve {self.name}`",
            )
        return None

    def instructions_approved(self, text: str | None) -> bool:
        pin = self.pin
        return pin is None or pin.instructions == text_hash(text)

    # -- per-tool decisions -----------------------------------------------------------------------

    def tool_status(self, definition: dict[str, Any]) -> str:
        """approved | new | changed — against the lock (a server not yet pinned: approved)."""
        pin = self.pin
        if pin is None:
            return "approved"
        pinned = pin.tool_hash(str(definition.get("name")))
        if pinned is None:
            return "new"
        return "approved" if pinned == tool_hash(definition) else "changed"

    def call_refusal(self, tool: str, current: dict[str, dict[str, Any]]) -> Refusal | None:
        definition = current.get(tool)
        if definition is None:
            pinned = self.pin is not None and tool in self.pin.tools
            return Refusal(
                "unknown_tool",
                f"turnout: server '{self.name}' does not offer tool '{tool}'"
                + (" any more" if pinned else ""),
            )
        status = self.tool_status(definition)
        if status == "approved":
            return None
        what = "is new" if status == "new" else "changed since it was approved"
        return Refusal(
            "unapproved_tool" if status == "new" else "changed_tool",
            f"turnout: tool '{tool}' of server '{self.name}' {what} and is held back until a "
            f"person approves it: `turnout mcp diff {self.name}`, then "
            f"`turnout mcp approve {self.name}:{tool}`",
        )

    def visible(self, tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        shown: list[dict[str, Any]] = []
        hidden: list[dict[str, Any]] = []
        for t in tools:
            (shown if self.tool_status(t) == "approved" else hidden).append(t)
        return shown, [str(t.get("name")) for t in hidden]

    def first_hold(self, tool: str | None, what: str, reason: str) -> bool:
        """True the first time this proxy holds back this definition (or package) for this
        reason: it is recorded once, not on every listing of every session."""
        key = (tool, what, reason)
        if key in self._holds:
            return False
        self._holds.add(key)
        return True

    def why_held(self, definition: dict[str, Any], current: dict[str, dict[str, Any]]) -> list[str]:
        """What a person would be approving: the change from the pinned definition, or for a new
        tool what the scanner says about it."""
        from turnout.mcp.changes import tool_changes
        from turnout.mcp.scanner.rules import scan_tool

        name = str(definition.get("name"))
        pin = self.pin
        if pin is not None and name in pin.tools:
            return tool_changes(pin.tools[name].get("definition") or {}, definition)
        siblings = set(current) | {str(t.get("title") or "") for t in current.values()}
        high = [f for f in scan_tool(definition, self.name, siblings) if f.severity == "high"]
        return [f"{f.rule}: {f.message}" for f in high] or ["new tool"]

    # -- learning and reporting -------------------------------------------------------------------

    def record_observation(self, obs: Observation) -> list[str]:
        """Pin on first use, or keep what differs for review. Returns the changes, in words."""
        pin = self.pin
        if pin is not None:
            changes = compare(self.name, View.of_pin(pin), View.of_observation(obs, {}))
            if not [c for c in changes if c.blocking]:
                self._clear_pending_observation()
                return [c.text for c in changes]
            self._keep_pending(obs)
            return [c.text for c in changes]
        if self.spec.unpinned == "block":
            self._keep_pending(obs)
            return ["server is not pinned"]
        trusted, held = screen(obs)
        for tool, why in held.items():
            log.warning(
                "server '%s': not trusting tool '%s' on first use: %s", self.name, tool, why
            )
        if held:
            self._keep_pending(obs)
        with editing(self.lock.path) as lock:
            if self.name not in lock.servers:  # another session may have pinned it meanwhile
                lock.servers[self.name] = ServerPin.of(trusted)
                log.warning(
                    "pinned server '%s' on first use: %d tools, %s",
                    self.name,
                    len(obs.tools),
                    obs.package.get("name") or obs.package.get("path") or obs.package.get("kind"),
                )
        self.refresh()
        return []

    def _keep_pending(self, obs: Observation) -> None:
        current = self.lock.pending.get(self.name)
        if current and current.observation and _same_observation(current.observation, obs):
            return
        with editing(self.lock.path) as lock:
            entry = lock.pending.setdefault(self.name, Pending())
            entry.observation = obs
        self.refresh()

    def _clear_pending_observation(self) -> None:
        current = self.lock.pending.get(self.name)
        if current is None or current.observation is None:
            return
        with editing(self.lock.path) as lock:
            entry = lock.pending.get(self.name)
            if entry is not None:
                entry.observation = None
        self.refresh()


def screen(obs: Observation) -> tuple[Observation, dict[str, str]]:
    """Trust on first use, except for what the scanner calls poisoned (a high finding):
    those tools are left out of the pin and stay held back until a person approves them."""
    from turnout.mcp.scanner.rules import scan_tool

    siblings = set(obs.tools) | {str(t.get("title") or "") for t in obs.tools.values()}
    held: dict[str, str] = {}
    for name, definition in obs.tools.items():
        high = [f for f in scan_tool(definition, "", siblings) if f.severity == "high"]
        if high:
            held[name] = "; ".join(f"{f.rule}: {f.message}" for f in high)
    trusted = Observation(
        obs.launch,
        obs.package,
        obs.server_info,
        obs.instructions,
        {n: d for n, d in obs.tools.items() if n not in held},
        obs.seen_at,
    )
    return trusted, held


def _same_observation(a: Observation, b: Observation) -> bool:
    return (
        canonical_json(a.package) == canonical_json(b.package)
        and a.instructions == b.instructions
        and {n: tool_hash(d) for n, d in a.tools.items()}
        == {n: tool_hash(d) for n, d in b.tools.items()}
    )
