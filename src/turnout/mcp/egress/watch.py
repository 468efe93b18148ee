"""Per session: attribute each outbound request to the tool calls in flight, and judge it.

What a tool may send is part of what a person approves: a shape the lock does not hold for the
tool is kept for review (`turnout mcp diff`), and under `enforce` refused before it leaves. A
tool's first outbound request is no exception (`egress_first_use: hold`): nothing is trusted
because it came first. With `egress_first_use: learn` a tool's first call is trusted and pins its
shapes instead (an empty list pins "sends nothing").

What a server sends while it starts (npx fetching it, say) is pinned with the server itself:
by `turnout mcp lock`, or in the session in which the proxy pins an unpinned server on first use
(`unpinned: pin`), which trusts that server's definitions in the same breath.

With several calls in flight a request is attributed to all of them: it passes if any of them is
pinned to send it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from turnout.mcp.canonical import canonical_json
from turnout.mcp.changes import egress_changes
from turnout.mcp.egress.recorder import Verdict
from turnout.mcp.guard import Guard
from turnout.mcp.lockfile import Pending, editing

log = logging.getLogger("turnout.mcp.egress")

BACKGROUND = "*"  # requests made while no tool call is in flight


@dataclass(slots=True)
class CallEgress:
    tool: str
    learning: bool
    shapes: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


class EgressWatch:
    def __init__(self, guard: Guard, mode: str, first_use: str = "hold"):
        self.guard = guard
        self.mode = mode
        self.learn = first_use == "learn"
        self._calls: dict[str, CallEgress] = {}
        first_session = guard.pin is None
        self._background = CallEgress(
            BACKGROUND, learning=self._learns(BACKGROUND) or first_session
        )

    def _learns(self, tool: str) -> bool:
        return self.learn and not self._pinned(tool)

    def _pinned(self, tool: str) -> bool:
        pin = self.guard.pin
        return pin is not None and tool in pin.egress

    def begin(self, call_id: str, tool: str) -> CallEgress:
        self.guard.refresh()
        call = CallEgress(tool, learning=self._learns(tool))
        self._calls[call_id] = call
        return call

    def end(self, call_id: str, ok: bool) -> CallEgress | None:
        call = self._calls.pop(call_id, None)
        if call is not None and call.learning and ok and self.guard.pin is not None:
            self._learn(call.tool, call.shapes)
        return call

    def settle_background(self) -> None:
        """The session is up: what the server sent while starting becomes its pinned background."""
        bg = self._background
        if bg.learning and self.guard.pin is not None:
            self._learn(BACKGROUND, bg.shapes)
            bg.learning = False

    def decide(self, shape: dict[str, Any]) -> Verdict:
        calls = list(self._calls.values()) or [self._background]
        for call in calls:
            if shape not in call.shapes:
                call.shapes.append(shape)
        pin = self.guard.pin
        key = canonical_json(shape)
        if any(c.learning for c in calls):
            return Verdict(True, "learning")
        if pin is not None and any(
            key in {canonical_json(s) for s in pin.egress.get(c.tool, [])} for c in calls
        ):
            return Verdict(True, "pinned")
        words = []
        for call in calls:
            found = egress_changes(call.tool, self._pinned_shapes(call.tool), [shape])
            call.violations += found
            words += found
        self._keep_pending([c.tool for c in calls], shape)
        text = "; ".join(dict.fromkeys(words)) or f"unpinned request to {shape.get('host')}"
        if self.mode == "enforce":
            for call in calls:
                call.refused.append(text)
            log.warning("egress refused for server '%s': %s", self.guard.name, text)
            names = [c.tool for c in calls if c.tool != BACKGROUND]
            target = f"{self.guard.name}:{names[0]}" if len(names) == 1 else self.guard.name
            return Verdict(
                False,
                f"{text} — not approved: review with `turnout mcp diff {self.guard.name}`, "
                f"approve with `turnout mcp approve {target}`",
            )
        log.warning("egress changed for server '%s': %s", self.guard.name, text)
        return Verdict(True, "recorded")

    def _pinned_shapes(self, tool: str) -> list[dict[str, Any]]:
        pin = self.guard.pin
        return [] if pin is None else list(pin.egress.get(tool, []))

    def _learn(self, tool: str, shapes: list[dict[str, Any]]) -> None:
        with editing(self.guard.lock.path) as lock:
            pin = lock.servers.get(self.guard.name)
            if pin is not None and tool not in pin.egress:
                pin.egress[tool] = sorted(shapes, key=canonical_json)
        self.guard.refresh()

    def _keep_pending(self, tools: list[str], shape: dict[str, Any]) -> None:
        with editing(self.guard.lock.path) as lock:
            pending = lock.pending.setdefault(self.guard.name, Pending())
            for tool in tools:
                seen = pending.egress.setdefault(tool, [])
                if shape not in seen:
                    seen.append(shape)
        self.guard.refresh()
