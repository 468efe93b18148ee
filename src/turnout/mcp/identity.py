"""What code a server runs: its package identity, resolved from disk before it is launched.

npm packages are named by name@version with the `integrity` hash npm recorded when it installed
them, plus a hash of the files actually on disk; PyPI distributions by name==version with the
hash of their RECORD (which lists every installed file's hash); anything else by the hash of the
executable or script. Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from turnout.mcp.config import ServerSpec

_NPX = {"npx", "bunx", "pnpx"}
_NODE = {"node", "nodejs", "bun", "deno", "tsx", "ts-node"}
_UVX = {"uvx", "pipx"}


def resolve_identity(spec: ServerSpec) -> dict[str, Any]:
    if spec.transport == "http":
        return {"kind": "remote", "url": spec.url}
    assert spec.command is not None
    cwd = Path(spec.cwd) if spec.cwd else Path.cwd()
    exe = Path(spec.command).name
    args = list(spec.args)
    if exe in _NPX or (exe in {"npm", "pnpm"} and args[:1] in (["exec"], ["dlx"])):
        return _npx_identity(args[1:] if exe in {"npm", "pnpm"} else args, cwd)
    if exe in _UVX or (exe == "uv" and args[:2] == ["tool", "run"]):
        return _uvx_identity(args[2:] if exe == "uv" else args[1:] if exe == "pipx" else args)
    if exe.startswith("python") and args[:1] == ["-m"] and len(args) > 1:
        return _python_module_identity(_which(spec.command, cwd), args[1])
    script = _script_arg(exe, args, cwd)
    if script is not None:
        package = _enclosing_npm_package(script)
        if package is not None:
            return _npm_identity(package, script)
        return {"kind": "file", "path": str(script), "sha256": _file_sha256(script)}
    binary = _which(spec.command, cwd)
    if binary is None:
        return {"kind": "missing", "command": spec.command}
    real = Path(os.path.realpath(binary))
    package = _enclosing_npm_package(real) if "node_modules" in real.parts else None
    if package is not None:
        return _npm_identity(package)
    dist = _venv_console_script(binary)
    if dist is not None:
        return dist
    return {"kind": "binary", "path": str(real), "sha256": _file_sha256(real)}


def fetches_at_launch(spec: ServerSpec) -> bool:
    """npx and friends may download a package as they start it: check again once it runs."""
    exe = Path(spec.command or "").name
    return exe in _NPX or exe in _UVX or (exe in {"npm", "pnpm", "uv"} and bool(spec.args))


def describe_identity(identity: dict[str, Any]) -> str:
    kind = identity.get("kind")
    if kind == "npm":
        return f"npm {identity.get('name')}@{identity.get('version')}"
    if kind == "pypi":
        return f"PyPI {identity.get('name')}=={identity.get('version')}"
    if kind == "remote":
        return f"remote {identity.get('url')}"
    if kind in ("file", "binary"):
        return f"{kind} {identity.get('path')} (sha256 {str(identity.get('sha256'))[:12]}…)"
    return f"{kind} {identity.get('command', '')}".strip()


# -- npm ---------------------------------------------------------------------------------------


def _npx_identity(args: list[str], cwd: Path) -> dict[str, Any]:
    name, version = _npx_package(args)
    if name is None:
        return {"kind": "npm", "name": None, "spec": args}
    for package in _npm_candidates(name, cwd):
        identity = _npm_identity(package)
        if version is None or identity.get("version") == version:
            return identity
    # Not installed yet: npx will fetch it, and only its name and the requested version are known.
    return {"kind": "npm", "name": name, "version": version, "installed": False}


def _npx_package(args: list[str]) -> tuple[str | None, str | None]:
    explicit: str | None = None
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-p", "--package") and i + 1 < len(args):
            explicit = args[i + 1]
            i += 2
            continue
        if a.startswith("--package="):
            explicit = a.split("=", 1)[1]
        elif not a.startswith("-"):
            return split_npm_spec(explicit or a)
        i += 1
    return split_npm_spec(explicit) if explicit else (None, None)


def split_npm_spec(spec: str) -> tuple[str, str | None]:
    at = spec.find("@", 1)  # a scope's leading @ is part of the name
    if at == -1:
        return spec, None
    return spec[:at], spec[at + 1 :] or None


def _npm_candidates(name: str, cwd: Path) -> list[Path]:
    found: list[Path] = []
    for parent in (cwd, *cwd.parents):
        pkg = parent / "node_modules" / name
        if (pkg / "package.json").is_file():
            found.append(pkg)
    npx_cache = Path(os.path.expanduser("~/.npm/_npx"))
    if npx_cache.is_dir():
        cached = [
            p for p in npx_cache.glob(f"*/node_modules/{name}") if (p / "package.json").exists()
        ]
        found += sorted(cached, key=lambda p: p.stat().st_mtime, reverse=True)
    return found


def _enclosing_npm_package(path: Path) -> Path | None:
    for parent in path.parents:
        if (parent / "package.json").is_file():
            return parent
        if parent.name == "node_modules":
            return None
    return None


def _npm_identity(package: Path, script: Path | None = None) -> dict[str, Any]:
    meta = _read_json(package / "package.json") or {}
    identity = {
        "kind": "npm",
        "name": meta.get("name"),
        "version": meta.get("version"),
        "integrity": _npm_integrity(package),
        "files": tree_sha256(package),
    }
    if identity["files"] is None and script is not None:
        # A script in a large project tree: the script itself stands for the code.
        identity["files"] = "script sha256:" + _file_sha256(script)
    return identity


def _npm_integrity(package: Path) -> str | None:
    """The integrity npm recorded for this install, from the lockfile of the tree it is in."""
    parts = package.resolve().parts
    if "node_modules" not in parts:
        return None
    cut = len(parts) - 1 - parts[::-1].index("node_modules")
    root = Path(*parts[:cut])
    key = "/".join(parts[cut:])
    for lockfile in (root / "node_modules" / ".package-lock.json", root / "package-lock.json"):
        entry = ((_read_json(lockfile) or {}).get("packages") or {}).get(key)
        if entry and entry.get("integrity"):
            return str(entry["integrity"])
    return None


_SKIP_DIRS = {"node_modules", ".git", "__pycache__", ".venv"}
_MAX_FILES = 5000


def tree_sha256(root: Path) -> str | None:
    """One hash over a package's own files (nested node_modules excluded); None if too many."""
    digest = hashlib.sha256()
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        count += len(filenames)
        if count > _MAX_FILES:
            return None
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            digest.update(rel.encode() + b"\0" + _file_sha256(path).encode() + b"\n")
    return "sha256:" + digest.hexdigest()


# -- PyPI --------------------------------------------------------------------------------------


def _uvx_identity(args: list[str]) -> dict[str, Any]:
    rest = [a for a in args if not a.startswith("-")]
    if not rest:
        return {"kind": "pypi", "name": None, "spec": args}
    name, _, version = rest[0].partition("==")
    if "@" in name and not version:
        name, _, version = name.partition("@")
    # uvx and pipx install into caches of their own; what is pinned is the requested version.
    return {"kind": "pypi", "name": name, "version": version or None, "installed": None}


def _python_module_identity(python: str | None, module: str) -> dict[str, Any]:
    if python is None:
        return {"kind": "missing", "command": "python"}
    probe = (
        "import importlib.metadata as m, json, sys, hashlib\n"
        "top = sys.argv[1].split('.')[0]\n"
        "names = m.packages_distributions().get(top) or []\n"
        "d = m.distribution(names[0]) if names else None\n"
        "rec = d.read_text('RECORD') if d else None\n"
        "print(json.dumps(None if d is None else {'name': d.metadata['Name'],"
        " 'version': d.version, 'record': 'sha256:' + hashlib.sha256((rec or '').encode())"
        ".hexdigest()}))\n"
    )
    try:
        out = subprocess.run(
            [python, "-c", probe, module], capture_output=True, text=True, timeout=20, check=True
        ).stdout
        found = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        found = None
    if not found:
        return {"kind": "python-module", "python": python, "module": module}
    return {"kind": "pypi", **found}


def _venv_console_script(binary: str) -> dict[str, Any] | None:
    bindir = Path(binary).parent
    if not (bindir.parent / "pyvenv.cfg").exists():
        return None
    script = Path(binary).name
    for dist in sorted(bindir.parent.glob("lib/python*/site-packages/*.dist-info")):
        entry_points = dist / "entry_points.txt"
        if entry_points.exists() and any(
            line.split("=")[0].strip() == script
            for line in entry_points.read_text(errors="replace").splitlines()
        ):
            meta = (dist / "METADATA").read_text(errors="replace").splitlines()
            fields = dict(line.split(": ", 1) for line in meta if ": " in line)
            record = dist / "RECORD"
            return {
                "kind": "pypi",
                "name": fields.get("Name"),
                "version": fields.get("Version"),
                "record": "sha256:" + _file_sha256(record) if record.exists() else None,
            }
    return None


# -- files -------------------------------------------------------------------------------------


def _script_arg(exe: str, args: list[str], cwd: Path) -> Path | None:
    if exe not in _NODE and not exe.startswith("python"):
        return None
    for a in args:
        if a.startswith("-"):
            continue
        path = Path(a) if Path(a).is_absolute() else cwd / a
        return path.resolve() if path.is_file() else None
    return None


def _which(command: str, cwd: Path) -> str | None:
    if os.sep in command:
        path = Path(command) if Path(command).is_absolute() else cwd / command
        return str(path) if path.exists() else None
    return shutil.which(command)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return "unreadable"
    return digest.hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


if __name__ == "__main__":  # pragma: no cover - a quick look from the shell
    print(json.dumps(resolve_identity(ServerSpec("x", "stdio", sys.argv[1], tuple(sys.argv[2:])))))
