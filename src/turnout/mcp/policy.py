"""Argument policy: which tools may be called, and with what, decided before the server sees it.

Pure functions of the policy and the call. A refusal says which argument broke which rule.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from turnout.mcp.config import ArgRule, Policy

_ADDRESS = re.compile(r"[^\s<>,;\"']+@([^\s<>,;\"']+)")


def tool_allowed(policy: Policy, tool: str) -> str | None:
    """None if the tool may be called, else why not."""
    if tool in policy.deny:
        return f"tool `{tool}` is denied by policy"
    if policy.allow is not None and tool not in policy.allow:
        return f"tool `{tool}` is not in the policy's allow list"
    return None


def check_arguments(policy: Policy, tool: str, arguments: dict[str, Any]) -> str | None:
    """None if every constrained argument is within its rules, else the first violation."""
    for rule in policy.args.get(tool, ()):
        for where, value in _values(arguments, rule.path):
            problem = _check(rule, value)
            if problem:
                return f"argument `{where}` {problem}"
    return None


def _values(data: Any, path: str) -> Iterator[tuple[str, Any]]:
    """The values a path like `to`, `cc[]` or `message.recipients[].email` names; absent is fine."""
    items: list[tuple[str, Any]] = [("", data)]
    for part in path.split("."):
        many = part.endswith("[]")
        key = part[:-2] if many else part
        found: list[tuple[str, Any]] = []
        for where, value in items:
            if not isinstance(value, dict) or key not in value:
                continue
            here = f"{where}.{key}" if where else key
            inner = value[key]
            if many and isinstance(inner, list):
                found += [(f"{here}[{i}]", v) for i, v in enumerate(inner)]
            else:
                found.append((here, inner))
        items = found
    return iter(items)


def _check(rule: ArgRule, value: Any) -> str | None:
    if isinstance(value, list):  # a list where a single value was expected: every item must pass
        for item in value:
            problem = _check(rule, item)
            if problem:
                return problem
        return None
    if rule.one_of is not None and value not in rule.one_of:
        return f"must be one of {list(rule.one_of)}"
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if rule.max_length is not None and len(text) > rule.max_length:
        return f"is longer than {rule.max_length} characters"
    if rule.pattern is not None and not re.fullmatch(rule.pattern, text):
        return f"does not match {rule.pattern!r}"
    if rule.email_domains is not None:
        return _email_domains(text, rule.email_domains)
    if rule.path_prefixes is not None:
        return _path_prefixes(text, rule.path_prefixes)
    if rule.url_hosts is not None:
        return _url_hosts(text, rule.url_hosts)
    return None


def _email_domains(text: str, domains: tuple[str, ...]) -> str | None:
    # Every address in the value counts: "a@ok.com, b@evil.com" is refused for b.
    domains_found = [d.lower().rstrip(".>") for d in _ADDRESS.findall(text)]
    if not domains_found:
        return "holds no email address"
    for domain in domains_found:
        if not any(domain == d or domain.endswith("." + d) for d in domains):
            return f"sends to domain {domain!r}, outside {list(domains)}"
    return None


def _path_prefixes(text: str, prefixes: tuple[str, ...]) -> str | None:
    if "\0" in text:
        return "contains a NUL byte"
    # Normalised first, so `/srv/data/../../etc/passwd` is judged as `/etc/passwd`.
    path = posixpath.normpath(text) if text.startswith("/") else None
    if path is None:
        return f"is not an absolute path (allowed under {list(prefixes)})"
    for prefix in prefixes:
        base = posixpath.normpath(prefix)
        if path == base or path.startswith(base.rstrip("/") + "/"):
            return None
    return f"is outside {list(prefixes)}"


def _url_hosts(text: str, hosts: tuple[str, ...]) -> str | None:
    try:
        host = (urlsplit(text).hostname or "").lower()
    except ValueError:
        return "is not a URL"
    if not host:
        return "is not a URL with a host"
    if any(host == h or host.endswith("." + h) for h in hosts):
        return None
    return f"points to host {host!r}, outside {list(hosts)}"
