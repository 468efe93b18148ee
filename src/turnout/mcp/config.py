"""The guard's config: which servers, how to launch them, and what the guard enforces.

The file is a client config as Claude Desktop, Cursor (`mcpServers`) and VS Code (`servers`)
write it, JSON, JSONC or YAML, plus turnout's own keys: a top-level `lock` and `store`, and a
`guard:` block per server. Keys a client invented are ignored; inside `guard:` every key is checked.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from turnout.config import RECORD_BODIES, ConfigError

EGRESS_MODES = ("off", "record", "enforce")
# What a tool's first outbound request meets: held until a person approves its shape, or learned.
FIRST_USE_MODES = ("hold", "learn")
UNPINNED_MODES = ("pin", "block")
TRANSPORTS = {"stdio": "stdio", "http": "http", "streamable-http": "http", "streamableHttp": "http"}
CONSTRAINTS = ("email_domains", "path_prefixes", "url_hosts", "pattern", "max_length", "one_of")


@dataclass(frozen=True, slots=True)
class ArgRule:
    """Constraints on one argument, addressed by a path such as `to`, `cc[]` or `message.to`."""

    path: str
    email_domains: tuple[str, ...] | None = None
    path_prefixes: tuple[str, ...] | None = None
    url_hosts: tuple[str, ...] | None = None
    pattern: str | None = None
    max_length: int | None = None
    one_of: tuple[Any, ...] | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    allow: tuple[str, ...] | None = None  # None: every approved tool
    deny: tuple[str, ...] = ()
    args: dict[str, tuple[ArgRule, ...]] = field(default_factory=dict)  # per tool


@dataclass(frozen=True, slots=True)
class ServerSpec:
    name: str
    transport: str  # stdio | http
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = ()
    egress: str = "enforce"
    egress_first_use: str = "hold"
    unpinned: str = "pin"
    policy: Policy = field(default_factory=Policy)
    validate_arguments: bool = True
    call_timeout_s: float | None = None

    def launch(self) -> dict[str, Any]:
        """How the server is started, as the lock records it: never the values of `env`."""
        if self.transport == "http":
            return {"transport": "http", "url": self.url}
        return {
            "transport": "stdio",
            "command": self.command,
            "args": list(self.args),
            **({"cwd": self.cwd} if self.cwd else {}),
            **({"env_keys": sorted(self.env)} if self.env else {}),
        }


@dataclass(frozen=True, slots=True)
class GuardConfig:
    source: str
    servers: dict[str, ServerSpec]
    lock_path: Path
    store_url: str = "sqlite:///turnout.db"
    record_bodies: str = "full"
    flush_interval_s: float = 0.2

    def server(self, name: str | None) -> ServerSpec:
        if name is None:
            if len(self.servers) != 1:
                names = ", ".join(self.servers) or "none"
                raise ConfigError(self.source, "", f"name a server (configured: {names})")
            return next(iter(self.servers.values()))
        if name not in self.servers:
            known = ", ".join(self.servers) or "none"
            raise ConfigError(self.source, "", f"no server {name!r} (configured: {known})")
        return self.servers[name]


def load_guard_config(path: str | os.PathLike[str]) -> GuardConfig:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", str(exc)) from None
    return parse_guard_config(text, source, base=Path(path).resolve().parent)


def guard_store_url(path: str | os.PathLike[str]) -> str | None:
    """The record a guard config writes to, or None if the file is not a guard config: so
    `turnout requests --config turnout-mcp.yaml` reads the tool calls the proxy recorded."""
    try:
        data = _parse_document(Path(path).read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, ConfigError):
        return None
    if not isinstance(data, dict) or not ({"mcpServers", "servers"} & set(data)):
        return None
    return load_guard_config(path).store_url


def parse_guard_config(text: str, source: str, base: Path | None = None) -> GuardConfig:
    data = _parse_document(text, source)
    if not isinstance(data, dict):
        raise ConfigError(source, "", "expected a mapping at the top level")
    base = base or Path.cwd()
    entries = data.get("mcpServers", data.get("servers"))
    key = "mcpServers" if "mcpServers" in data else "servers"
    if entries is None:
        raise ConfigError(source, "", "no `mcpServers` (or `servers`) mapping")
    if not isinstance(entries, dict):
        raise ConfigError(source, key, "expected a mapping of server name to server")
    servers = {
        str(name): _server(source, f"{key}.{name}", str(name), entry, base)
        for name, entry in entries.items()
    }
    lock = data.get("lock", "mcp.lock")
    if not isinstance(lock, str):
        raise ConfigError(source, "lock", "expected a path")
    store = data.get("store") or {}
    if not isinstance(store, dict):
        raise ConfigError(source, "store", "expected a mapping")
    _only(source, "store", store, ("url", "record_bodies", "flush_interval_s"))
    url = store.get("url", "sqlite:///turnout.db")
    if not isinstance(url, str) or not url.startswith("sqlite:///"):
        raise ConfigError(source, "store.url", f"expected sqlite:///PATH, got {url!r}")
    record_bodies = store.get("record_bodies", "full")
    if record_bodies not in RECORD_BODIES:
        raise ConfigError(
            source, "store.record_bodies", f"must be one of {', '.join(RECORD_BODIES)}"
        )
    flush = store.get("flush_interval_s", 0.2)
    if not isinstance(flush, int | float) or isinstance(flush, bool) or flush <= 0:
        raise ConfigError(source, "store.flush_interval_s", "expected a positive number")
    return GuardConfig(
        source=source,
        servers=servers,
        lock_path=_beside(base, lock),
        # A proxy started by a desktop client runs in an arbitrary directory: relative store
        # and lock paths are taken from where the config file lives.
        store_url="sqlite:///" + str(_beside(base, url.removeprefix("sqlite:///"))),
        record_bodies=record_bodies,
        flush_interval_s=float(flush),
    )


def _beside(base: Path, path: str) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else base / p


def _parse_document(text: str, source: str) -> Any:
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return json.loads(_strip_jsonc(text))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                source, "", f"invalid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(source, "", f"invalid YAML: {where}{exc}") from None


_JSONC = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/|,(?=\s*[}\]])', re.S)


def _strip_jsonc(text: str) -> str:
    """VS Code's mcp.json allows comments and trailing commas."""
    return _JSONC.sub(lambda m: m.group(0) if m.group(0).startswith('"') else "", text)


_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: str) -> str:
    return _ENV_REF.sub(lambda m: os.environ.get(m.group(1), ""), value)


def _server(source: str, where: str, name: str, entry: Any, base: Path) -> ServerSpec:
    if not isinstance(entry, dict):
        raise ConfigError(source, where, "expected a mapping")
    kind = entry.get("type")
    url = entry.get("url") or entry.get("serverUrl")
    if kind is None:
        kind = "http" if url and not entry.get("command") else "stdio"
    if kind == "sse":
        raise ConfigError(source, f"{where}.type", "the deprecated SSE transport is not supported")
    if kind not in TRANSPORTS:
        raise ConfigError(source, f"{where}.type", f"unknown transport {kind!r}")
    transport = TRANSPORTS[kind]
    args = entry.get("args") or []
    env = entry.get("env") or {}
    headers = entry.get("headers") or {}
    if transport == "stdio" and not isinstance(entry.get("command"), str):
        raise ConfigError(source, f"{where}.command", "a stdio server needs a command")
    if transport == "http" and not isinstance(url, str):
        raise ConfigError(source, f"{where}.url", "an HTTP server needs a url")
    if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
        raise ConfigError(source, f"{where}.args", "expected a list of strings")
    for key, value in (("env", env), ("headers", headers)):
        if not isinstance(value, dict):
            raise ConfigError(source, f"{where}.{key}", "expected a mapping of strings")
    guard = entry.get("guard") or {}
    if not isinstance(guard, dict):
        raise ConfigError(source, f"{where}.guard", "expected a mapping")
    g = f"{where}.guard"
    _only(
        source,
        g,
        guard,
        (
            "egress",
            "egress_first_use",
            "unpinned",
            "pass_env",
            "allow",
            "deny",
            "tools",
            "validate_arguments",
            "call_timeout_s",
        ),
    )
    egress = guard.get("egress", "enforce")
    if egress is False:
        egress = "off"  # YAML reads a bare `off` as false
    if egress not in EGRESS_MODES:
        raise ConfigError(source, f"{g}.egress", f"must be one of {', '.join(EGRESS_MODES)}")
    first_use = guard.get("egress_first_use", "hold")
    if first_use not in FIRST_USE_MODES:
        raise ConfigError(
            source, f"{g}.egress_first_use", f"must be one of {', '.join(FIRST_USE_MODES)}"
        )
    unpinned = guard.get("unpinned", "pin")
    if unpinned not in UNPINNED_MODES:
        raise ConfigError(source, f"{g}.unpinned", f"must be one of {', '.join(UNPINNED_MODES)}")
    timeout = guard.get("call_timeout_s")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise ConfigError(source, f"{g}.call_timeout_s", "expected a positive number of seconds")
    validate = guard.get("validate_arguments", True)
    if not isinstance(validate, bool):
        raise ConfigError(source, f"{g}.validate_arguments", "expected true or false")
    return ServerSpec(
        name=name,
        transport=transport,
        command=_expand(entry["command"]) if transport == "stdio" else None,
        args=tuple(_expand(str(a)) for a in args),
        env={str(k): _expand(str(v)) for k, v in env.items()},
        cwd=_cwd(source, f"{where}.cwd", entry.get("cwd"), base),
        url=url if transport == "http" else None,
        headers={str(k): _expand(str(v)) for k, v in headers.items()},
        pass_env=_strings(source, f"{g}.pass_env", guard.get("pass_env")) or (),
        egress=egress,
        egress_first_use=first_use,
        unpinned=unpinned,
        policy=_policy(source, g, guard),
        validate_arguments=validate,
        call_timeout_s=None if timeout is None else float(timeout),
    )


def _cwd(source: str, where: str, value: Any, base: Path) -> str | None:
    """A relative `cwd` is taken from the config's folder, like `lock` and `store`: a client
    starts the proxy wherever it likes."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(source, where, "expected a path")
    return str(_beside(base, _expand(value)))


def _policy(source: str, where: str, guard: dict[str, Any]) -> Policy:
    allow = _strings(source, f"{where}.allow", guard.get("allow"))
    deny = _strings(source, f"{where}.deny", guard.get("deny")) or ()
    tools = guard.get("tools") or {}
    if not isinstance(tools, dict):
        raise ConfigError(source, f"{where}.tools", "expected a mapping of tool name to rules")
    rules: dict[str, tuple[ArgRule, ...]] = {}
    for tool, spec in tools.items():
        at = f"{where}.tools.{tool}"
        if not isinstance(spec, dict):
            raise ConfigError(source, at, "expected a mapping")
        _only(source, at, spec, ("args",))
        args = spec.get("args") or {}
        if not isinstance(args, dict):
            raise ConfigError(source, f"{at}.args", "expected a mapping of argument to constraints")
        rules[str(tool)] = tuple(
            _arg_rule(source, f"{at}.args.{path}", str(path), c) for path, c in args.items()
        )
    return Policy(allow=allow, deny=deny, args=rules)


def _arg_rule(source: str, where: str, path: str, c: Any) -> ArgRule:
    if not isinstance(c, dict):
        raise ConfigError(source, where, "expected a mapping of constraints")
    _only(source, where, c, CONSTRAINTS)
    pattern = c.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise ConfigError(
                source, f"{where}.pattern", f"not a regular expression: {exc}"
            ) from None
    max_length = c.get("max_length")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 0):
        raise ConfigError(source, f"{where}.max_length", "expected a non-negative integer")
    one_of = c.get("one_of")
    if one_of is not None and not isinstance(one_of, list):
        raise ConfigError(source, f"{where}.one_of", "expected a list")
    domains = _strings(source, f"{where}.email_domains", c.get("email_domains"))
    return ArgRule(
        path=path,
        email_domains=tuple(d.lower().lstrip("@") for d in domains) if domains else None,
        path_prefixes=_strings(source, f"{where}.path_prefixes", c.get("path_prefixes")),
        url_hosts=_strings(source, f"{where}.url_hosts", c.get("url_hosts")),
        pattern=pattern,
        max_length=max_length,
        one_of=tuple(one_of) if one_of is not None else None,
    )


def _strings(source: str, where: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(source, where, "expected a list of strings")
    return tuple(value)


def _only(source: str, where: str, data: dict[str, Any], known: tuple[str, ...]) -> None:
    for key in data:
        if key not in known:
            raise ConfigError(source, f"{where}.{key}", f"unknown key (known: {', '.join(known)})")
