"""Text from a server, made safe to show a person: every character that hides or rewrites text
is named instead of printed (`<U+200B>`, `<ESC>`), so a reviewer never approves a blank.

A terminal acts on control characters (`\\x1b[8m` conceals what follows) and shows zero-width,
bidi and tag characters as nothing at all; a model reads them all. What a reviewer sees must be
what the model reads.
"""

from __future__ import annotations

import re
import unicodedata

_NAMES = {
    0x00: "NUL",
    0x07: "BEL",
    0x08: "BS",
    0x0D: "CR",
    0x1B: "ESC",
    0x7F: "DEL",
    0x9B: "CSI",
}
_SHOWN_SPACE = {" ", "\u3000"}  # the ideographic space is how CJK text spaces words
_VARIATION = ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF))  # can smuggle bytes after any character


def _hidden(ch: str) -> bool:
    code = ord(ch)
    category = unicodedata.category(ch)
    if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        return True
    if category == "Zs" and ch not in _SHOWN_SPACE:
        return True  # no-break and other odd spaces read like a space but compare unequal
    return any(lo <= code <= hi for lo, hi in _VARIATION)


def _name(ch: str) -> str:
    code = ord(ch)
    return f"<{_NAMES[code]}>" if code in _NAMES else f"<U+{code:04X}>"


# Precomputed for the common case: a string with nothing to name is returned untouched.
_SAFE_ASCII = re.compile(r"[\x20-\x7e\n\t]*")


def visible(text: str, *, newlines: bool = False) -> str:
    """`text` with every hiding character named; newlines and tabs become `\\n` and `\\t`
    unless `newlines` keeps them (multi-line output such as a report)."""
    if _SAFE_ASCII.fullmatch(text) and (newlines or ("\n" not in text and "\t" not in text)):
        return text
    out: list[str] = []
    for ch in text:
        if ch in "\n\t":
            out.append(ch if newlines else ("\\n" if ch == "\n" else "\\t"))
        elif _hidden(ch):
            out.append(_name(ch))
        else:
            out.append(ch)
    return "".join(out)


def json_visible(text: str) -> str:
    """Serialised JSON with every hiding character written as a `\\uXXXX` escape: the same data
    to a machine, nothing a terminal acts on or hides. (They can only occur inside strings.)"""

    def escape(ch: str) -> str:
        code = ord(ch)
        if code > 0xFFFF:
            code -= 0x10000
            return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
        return f"\\u{code:04x}"

    return "".join(escape(ch) if ch not in "\n\t" and _hidden(ch) else ch for ch in text)
