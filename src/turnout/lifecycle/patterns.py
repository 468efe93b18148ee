"""Regular expressions from clients' JSON Schemas, matched with a deadline.

`jsonschema` matches `pattern`, `patternProperties` and the keys `additionalProperties` and
`unevaluatedProperties` weigh with the standard `re` module, which can backtrack for minutes on a
pattern like `^(a|aa)+$` while holding the event loop. Its keyword modules are pointed here
instead: the `regex` engine, which stops at a deadline; everything else is `re` unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import re as _re
import time
from collections.abc import Iterator
from typing import Any

import regex
from jsonschema import _keywords, _legacy_keywords, _utils

DEFAULT_S = 1.0  # a check outside any budget (e.g. another user of jsonschema in the process)
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


@contextlib.contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Every pattern matched inside shares `seconds`; past it, matching raises TimeoutError."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def search(pattern: str, string: str, flags: int = 0) -> Any:
    deadline = _deadline.get()
    left = DEFAULT_S if deadline is None else deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("pattern budget spent")
    return regex.search(pattern, string, flags, timeout=left)


class _BoundedRe:
    """`re`, but `search` stops at the deadline."""

    search = staticmethod(search)

    def __getattr__(self, name: str) -> Any:
        return getattr(_re, name)


for _module in (_keywords, _legacy_keywords, _utils):
    _module.re = _BoundedRe()  # type: ignore[attr-defined]
