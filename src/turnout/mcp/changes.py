"""What changed between two views of a server, in words a person can act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from turnout.mcp.canonical import canonical_json, text_hash, tool_hash
from turnout.mcp.identity import describe_identity
from turnout.mcp.lockfile import Observation, ServerPin
from turnout.mcp.visible import visible


@dataclass(frozen=True, slots=True)
class Change:
    server: str
    # package | launch | server_info | instructions | tool_added | tool_removed | tool_changed
    # | egress
    kind: str
    text: str
    tool: str | None = None
    blocking: bool = True  # does the guard refuse something until it is approved?

    def as_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "kind": self.kind,
            "tool": self.tool,
            "text": self.text,
            "blocking": self.blocking,
        }


@dataclass(slots=True)
class View:
    """The comparable parts of a lock entry or of an observation."""

    launch: dict[str, Any] = field(default_factory=dict)
    package: dict[str, Any] = field(default_factory=dict)
    server_info: dict[str, Any] | None = None
    instructions: str | None = None  # hash
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    egress: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def of_pin(cls, pin: ServerPin) -> View:
        tools = {n: e.get("definition") or {} for n, e in pin.tools.items()}
        return cls(pin.launch, pin.package, pin.server_info, pin.instructions, tools, pin.egress)

    @classmethod
    def of_observation(cls, obs: Observation, egress: dict[str, list[dict[str, Any]]]) -> View:
        return cls(
            obs.launch, obs.package, obs.server_info, text_hash(obs.instructions), obs.tools, egress
        )


def compare(server: str, old: View, new: View) -> list[Change]:
    out: list[Change] = []
    if old.package and new.package and canonical_json(old.package) != canonical_json(new.package):
        out.append(Change(server, "package", package_change(old.package, new.package)))
    if old.launch and new.launch and canonical_json(old.launch) != canonical_json(new.launch):
        out.append(Change(server, "launch", _launch_change(old.launch, new.launch), blocking=False))
    if (old.server_info or {}).get("version") != (new.server_info or {}).get("version"):
        a, b = (old.server_info or {}).get("version"), (new.server_info or {}).get("version")
        out.append(
            Change(server, "server_info", f"server reports version {a} → {b}", blocking=False)
        )
    if old.instructions != new.instructions:
        what = (
            "added"
            if old.instructions is None
            else "removed"
            if new.instructions is None
            else "changed"
        )
        out.append(Change(server, "instructions", f"server instructions {what}"))
    for name in sorted(set(old.tools) | set(new.tools)):
        if name not in old.tools:
            said = new.tools[name].get("description")
            text = f"new tool `{name}`" + (f": {_short(said, _TEXT_LIMIT)}" if said else "")
            out.append(Change(server, "tool_added", text, tool=name))
        elif name not in new.tools:
            out.append(Change(server, "tool_removed", f"tool `{name}` removed", name, False))
        elif tool_hash(old.tools[name]) != tool_hash(new.tools[name]):
            for text in tool_changes(old.tools[name], new.tools[name]):
                out.append(Change(server, "tool_changed", f"{name}: {text}", tool=name))
    for tool in sorted(set(new.egress)):
        for text in egress_changes(tool, old.egress.get(tool, []), new.egress.get(tool, [])):
            out.append(Change(server, "egress", text, tool=tool))
    return out


def package_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    if (
        old.get("kind") == new.get("kind")
        and old.get("name")
        and old.get("name") == new.get("name")
    ):
        label = "package" if old.get("kind") == "npm" else f"{old.get('kind')} package"
        if old.get("version") != new.get("version"):
            return f"{label} {old['name']} {old.get('version')} → {new.get('version')}"
        changed = [k for k in ("integrity", "files", "record") if old.get(k) != new.get(k)]
        what = ", ".join(changed) or "metadata"
        return f"{label} {old['name']} {old.get('version')}: same version, different {what}"
    if old.get("kind") == new.get("kind") and old.get("path") == new.get("path"):
        return (
            f"{describe_identity(old)} → contents changed (sha256 {str(new.get('sha256'))[:12]}…)"
        )
    return f"{describe_identity(old)} → {describe_identity(new)}"


def _launch_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    def line(d: dict[str, Any]) -> str:
        return d.get("url") or " ".join(
            [str(d.get("command"))] + [str(a) for a in d.get("args", [])]
        )

    return f"launch changed: `{line(old)}` → `{line(new)}`"


def tool_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key in ("title", "description"):
        if old.get(key) != new.get(key):
            out.append(_text_change(key, old.get(key), new.get(key)))
    for key in ("inputSchema", "outputSchema"):
        a, b = old.get(key), new.get(key)
        if canonical_json(a) != canonical_json(b):
            found = schema_changes(key, a or {}, b or {})
            out += found or [f"{key} changed"]
    a_ann, b_ann = old.get("annotations") or {}, new.get("annotations") or {}
    for k in sorted(set(a_ann) | set(b_ann)):
        if canonical_json(a_ann.get(k)) != canonical_json(b_ann.get(k)):
            out.append(f"annotations.{k} {_short(a_ann.get(k))} → {_short(b_ann.get(k))}")
    return out or ["definition changed"]


def _text_change(key: str, a: str | None, b: str | None) -> str:
    """Name the part that changed: an edit deep inside a long text, or one of invisible
    characters, would otherwise show as two identical-looking strings."""
    if a is None:
        return f"{key} added: {_short(b, _TEXT_LIMIT)}"
    if b is None:
        return f"{key} removed"
    if b.startswith(a):
        return f"{key} gained text {_short(b[len(a) :], _TEXT_LIMIT)}"
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    lost, gained = a[start : len(a) - end], b[start : len(b) - end]
    context = ("…" if start > 30 else "") + a[max(0, start - 30) : start]
    where = f" after {_short(context)}" if start else " at the start"
    if not lost:
        return f"{key} gained text {_short(gained, _TEXT_LIMIT)}{where}"
    if not gained:
        return f"{key} lost text {_short(lost, _TEXT_LIMIT)}{where}"
    return f"{key} changed: {_short(lost, _TEXT_LIMIT)} → {_short(gained, _TEXT_LIMIT)}{where}"


def schema_changes(where: str, a: Any, b: Any, path: str = "") -> list[str]:
    """Property-level changes of a JSON Schema, named the way a reviewer thinks of them."""
    out: list[str] = []
    if not isinstance(a, dict) or not isinstance(b, dict):
        return [f"{where} {path or 'schema'} {_short(a)} → {_short(b)}"]
    pa, pb = a.get("properties") or {}, b.get("properties") or {}
    for name in sorted(set(pa) | set(pb)):
        full = f"{path}.{name}" if path else name
        if name not in pa:
            out.append(f"{where} gained property `{full}`")
        elif name not in pb:
            out.append(f"{where} lost property `{full}`")
        elif canonical_json(pa[name]) != canonical_json(pb[name]):
            out += _property_changes(where, full, pa[name], pb[name])
    ra, rb = set(a.get("required") or []), set(b.get("required") or [])
    for name in sorted(rb - ra):
        out.append(f"{where} now requires `{path + '.' if path else ''}{name}`")
    for name in sorted(ra - rb):
        out.append(f"{where} no longer requires `{path + '.' if path else ''}{name}`")
    for key in sorted((set(a) | set(b)) - {"properties", "required"}):
        if canonical_json(a.get(key)) != canonical_json(b.get(key)):
            at = f" of `{path}`" if path else ""
            out.append(f"{where} {key}{at} {_short(a.get(key))} → {_short(b.get(key))}")
    return out


def _property_changes(where: str, path: str, a: Any, b: Any) -> list[str]:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return [f"{where} property `{path}` {_short(a)} → {_short(b)}"]
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if canonical_json(va) == canonical_json(vb):
            continue
        if va is None or vb is None:
            verb = "gained" if va is None else "lost"
            out.append(f"{where} property `{path}` {verb} {key} {_short(vb if va is None else va)}")
        elif key == "enum" and isinstance(va, list) and isinstance(vb, list):
            gained = [v for v in vb if v not in va]
            lost = [v for v in va if v not in vb]
            if gained:
                out.append(
                    f"{where} property `{path}` enum gained {', '.join(map(_short, gained))}"
                )
            if lost:
                out.append(f"{where} property `{path}` enum lost {', '.join(map(_short, lost))}")
        elif key in ("properties", "required"):
            out += schema_changes(where, a, b, path) if key == "properties" else []
        elif key == "items":
            out += _property_changes(where, f"{path}[]", va or {}, vb or {})
        elif key == "description":
            out.append(f"{where} property `{path}` {_text_change('description', va, vb)}")
        else:
            out.append(f"{where} property `{path}` {key} {_short(va)} → {_short(vb)}")
    if "required" in a or "required" in b:
        ra, rb = set(a.get("required") or []), set(b.get("required") or [])
        out += [f"{where} now requires `{path}.{n}`" for n in sorted(rb - ra)]
        out += [f"{where} no longer requires `{path}.{n}`" for n in sorted(ra - rb)]
    return out


def egress_changes(tool: str, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """ "send_email now sends field `Bcc` to api.postmarkapp.com" — for shapes `old` lacks."""
    out: list[str] = []
    known = {canonical_json(s) for s in old}
    for shape in new:
        if canonical_json(shape) in known:
            continue
        host, method, path = shape.get("host"), shape.get("method"), shape.get("path")
        same_route = [
            s
            for s in old
            if (s.get("host"), s.get("method"), s.get("path")) == (host, method, path)
        ]
        keys = set(shape.get("keys") or [])
        who = "(outside any tool call)" if tool == "*" else tool
        if same_route:
            before = set.intersection(*(set(s.get("keys") or []) for s in same_route))
            union = set.union(*(set(s.get("keys") or []) for s in same_route))
            gained = sorted(keys - union)
            lost = sorted(before - keys)
            if gained:
                fields = ", ".join(f"`{k}`" for k in gained)
                noun = "field" if len(gained) == 1 else "fields"
                out.append(f"{who} now sends {noun} {fields} to {host} ({method} {path})")
            if lost:
                fields = ", ".join(f"`{k}`" for k in lost)
                out.append(f"{who} no longer sends {fields} to {host} ({method} {path})")
            if not gained and not lost:
                out.append(f"{who} sends a new combination of fields to {host} ({method} {path})")
        else:
            fields = f" with fields {', '.join(sorted(keys))}" if keys else ""
            route = f"{method} {path}" if path else method
            out.append(f"{who} now sends {route} to {host}{fields}")
    return out


_TEXT_LIMIT = 240  # what a reviewer is asked to approve is shown in full, up to a point


def _short(value: Any, limit: int = 80) -> str:
    text = visible(value if isinstance(value, str) else canonical_json(value))
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f'"{text}"' if isinstance(value, str) else text
