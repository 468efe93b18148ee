"""Per session: attribute each outbound request to the tool calls in flight, and judge it.

A tool's first call through the guard is trusted and its shapes are pinned (an empty list pins
"sends nothing"). After that a shape the lock lacks is kept for review; under `enforce` the
request is refused before it leaves. With several calls in flight a request is attributed to all
of them: it passes if any of them is pinned to send it.
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
    def __init__(self, guard: Guard, mode: str):
        self.guard = guard
        self.mode = mode
        self._calls: dict[str, CallEgress] = {}
        self._background = CallEgress(BACKGROUND, learning=not self._pinned(BACKGROUND))

    def _pinned(self, tool: str) -> bool:
        pin = self.guard.pin
        return pin is not None and tool in pin.egress

    def begin(self, call_id: str, tool: str) -> CallEgress:
        self.guard.refresh()
        call = CallEgress(tool, learning=not self._pinned(tool))
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
            return Verdict(
                False, f"{text} — not approved; see `turnout mcp diff {self.guard.name}`"
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
