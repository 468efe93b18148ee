"""A key's rate-limit headers as each wire's clients read them.

The guard answers in OpenAI's dialect (`x-ratelimit-reset-requests: 1m0s`, a duration);
Anthropic's SDKs read `anthropic-ratelimit-requests-reset` as the RFC 3339 time the window is
whole again.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime

_PREFIX = "x-ratelimit-"
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def seconds(duration: str) -> float | None:
    """A Go duration ("17ms", "1.5s", "1m0s") in seconds; None if it is not one."""
    parts = _PART.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def anthropic(headers: Mapping[str, str], now: float | None = None) -> dict[str, str]:
    """`headers` with OpenAI's x-ratelimit-* replaced by Anthropic's anthropic-ratelimit-*."""
    wall = time.time() if now is None else now
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not name.startswith(_PREFIX):
            out[name] = value
            continue
        what, _, kind = name.removeprefix(_PREFIX).partition("-")  # limit|remaining|reset
        if what == "reset":
            wait = seconds(value)
            if wait is None:
                continue
            at = datetime.fromtimestamp(math.ceil(wall + wait), UTC)  # whole by then, not before
            value = at.isoformat().replace("+00:00", "Z")
        out[f"anthropic-ratelimit-{kind}-{what}"] = value
    return out
