"""The shape of an outbound HTTP request: host, method, path, JSON keys — never values."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_MAX_DEPTH = 3
_ID_SEGMENT = re.compile(
    r"^(\d+|[0-9a-fA-F]{16,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[A-Za-z0-9_\-]{24,})$"
)


def shape_of(
    method: str, url: str, body: bytes | str | None = None, content_type: str | None = None
) -> dict[str, Any]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port and parts.port != default:
        host = f"{host}:{parts.port}"
    shape: dict[str, Any] = {
        "host": host,
        "method": method.upper(),
        "path": normalise_path(parts.path or "/"),
        "keys": body_keys(body, content_type),
    }
    if parts.query:
        shape["query"] = sorted({k for k, _ in parse_qsl(parts.query, keep_blank_values=True)})
    return shape


def tunnel_shape(host: str, port: int) -> dict[str, Any]:
    """HTTPS through a CONNECT tunnel: only where it goes is visible."""
    return {
        "host": host.lower() if port == 443 else f"{host.lower()}:{port}",
        "method": "CONNECT",
        "path": None,
        "keys": None,
    }


def normalise_path(path: str) -> str:
    # Ids in paths differ on every call; keeping them would flag each call as new behaviour.
    return "/".join("{id}" if _ID_SEGMENT.match(seg) else seg for seg in path.split("/")) or "/"


def body_keys(body: bytes | str | None, content_type: str | None) -> list[str] | None:
    if not body:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    ctype = (content_type or "").lower()
    if "x-www-form-urlencoded" in ctype:
        return sorted({k for k, _ in parse_qsl(text, keep_blank_values=True)})
    try:
        data = json.loads(text)
    except ValueError:
        return None
    keys: set[str] = set()
    _collect(data, "", 0, keys)
    return sorted(keys)


def _collect(value: Any, prefix: str, depth: int, out: set[str]) -> None:
    if depth >= _MAX_DEPTH:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            out.add(name)
            _collect(v, name, depth + 1, out)
    elif isinstance(value, list):
        for item in value[:50]:
            _collect(item, f"{prefix}[]", depth + 1 if prefix else depth, out)
