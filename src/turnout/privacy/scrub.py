"""Scrub text that came from an upstream before anyone sees it: client, record, logs or spans.

Upstreams echo what they were sent ("Incorrect API key provided: Bearer sk-…"), print their
tracebacks and name their internal hosts. An error message keeps its meaning and loses those.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from turnout.privacy.detectors import find_ipv6
from turnout.privacy.secrets import find_secrets

MAX_CHARS = 500
SECRET = "[secret]"
ADDRESS = "[address]"

_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[^\s\"',;]{4,}")
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|\n\s+at [\w$.<>]+ \(|\n\s+File \"")
_URL = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s\"'<>]+", re.IGNORECASE)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\w.])")
_HOST_PORT = re.compile(r"(?<![\w.\-])(?:localhost|[a-z0-9\-]+(?:\.[a-z0-9\-]+)+):\d{2,5}\b", re.I)


def scrub(text: str, known: Iterable[str] = ()) -> str:
    """`text` without secrets, tracebacks or internal addresses, at most MAX_CHARS long."""
    cut = _TRACEBACK.search(text)
    if cut is not None:
        text = text[: cut.start()].rstrip() + " [traceback removed]"
    for value in known:
        if value and len(value) >= 8:
            text = text.replace(value, SECRET)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {SECRET}", text)
    spans = sorted(
        [(f.start, f.end, SECRET) for f in find_secrets(text)]
        + [(f.start, f.end, ADDRESS) for f in find_ipv6(text)]
    )
    out: list[str] = []
    at = 0
    for start, end, mark in spans:
        if start < at:
            continue  # overlaps the previous span
        out.append(text[at:start])
        out.append(mark)
        at = end
    out.append(text[at:])
    text = "".join(out)
    for pattern in (_URL, _IPV4, _HOST_PORT):
        text = pattern.sub(ADDRESS, text)
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + "…"
    return text
