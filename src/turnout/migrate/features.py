"""What an answer looks like, apart from what it says: format, language, JSON, tool calls."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from turnout.fingerprint.refusal import is_refusal

_FENCE = re.compile(r"```([\w+#.-]*)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s", re.MULTILINE)
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S", re.MULTILINE)
_EMPHASIS = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_TABLE = re.compile(r"^\s*\|.*\|\s*$", re.MULTILINE)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_STOPWORDS = {
    "en": {"the", "and", "is", "of", "to", "in", "it", "you", "that", "a", "for", "with"},
    "de": {"der", "die", "das", "und", "ist", "nicht", "ein", "eine", "ich", "zu", "mit", "sie"},
    "fr": {"le", "la", "les", "et", "est", "un", "une", "des", "je", "pas", "que", "vous"},
    "es": {"el", "la", "los", "las", "y", "es", "un", "una", "que", "por", "con", "para"},
    "it": {"il", "lo", "gli", "e", "è", "un", "una", "che", "di", "non", "per", "sono"},
    "pt": {"o", "os", "as", "e", "é", "um", "uma", "que", "não", "com", "para", "de"},
}
_SCRIPTS = (
    ("cjk", re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")),
    ("cyrillic", re.compile(r"[\u0400-\u04ff]")),
    ("arabic", re.compile(r"[\u0600-\u06ff]")),
)


def language(text: str) -> str:
    """A coarse guess: a script for non-Latin text, else the language whose common words it uses
    most ("und" when the text is too short to say)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "und"
    for name, pattern in _SCRIPTS:
        if len(pattern.findall(text)) > len(letters) / 3:
            return name
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 3:
        return "und"
    hits = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    best = max(hits, key=lambda k: hits[k])
    return best if hits[best] >= max(1, len(words) // 20) else "latin"


def strip_fence(text: str) -> str:
    """The body of a single fenced block (```json … ```), or the text itself."""
    s = text.strip()
    if s.startswith("```") and s.endswith("```") and s.count("```") == 2:
        s = s[3:-3]
        first, _, rest = s.partition("\n")
        return rest if first.strip().isidentifier() or not first.strip() else s
    return s


def parse_json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(strip_fence(text))
    except (ValueError, TypeError):
        return False, None


def skeleton(value: Any) -> Any:
    """The shape of a JSON value: keys and types, not the values."""
    if isinstance(value, dict):
        return {k: skeleton(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        shapes: list[Any] = []
        for item in value:
            s = skeleton(item)
            if s not in shapes:
                shapes.append(s)
        return ["list", shapes]
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else "string"


def leaves(value: Any, path: str = "$") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(leaves(v, f"{path}.{k}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(leaves(v, f"{path}[{i}]"))
        return out
    return {path: value}


def json_diff(a: Any, b: Any) -> tuple[bool, float, list[str]]:
    """(same structure, share of leaf values equal, the paths that differ, first few)."""
    la, lb = leaves(a), leaves(b)
    paths = sorted(set(la) | set(lb))
    differ = [p for p in paths if la.get(p, ...) != lb.get(p, ...)]
    share = 1 - len(differ) / len(paths) if paths else 1.0
    return skeleton(a) == skeleton(b), share, differ[:5]


def tool_trajectory(calls: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(name, parsed arguments) per call, in order."""
    out = []
    for call in calls:
        inner = call.get("function")
        fn: dict[str, Any] = inner if isinstance(inner, dict) else call
        name = str(fn.get("name") or "")
        args = fn.get("arguments")
        if isinstance(args, str):
            ok, parsed = parse_json(args)
            args = parsed if ok else args
        out.append((name, args))
    return out


@dataclass(frozen=True, slots=True)
class Features:
    chars: int
    refusal: bool
    fences: tuple[str, ...]  # languages of fenced code blocks ("" when unnamed)
    markdown: tuple[str, ...]  # heading, list, emphasis, table: those present
    language: str
    is_json: bool

    @property
    def format(self) -> tuple[Any, ...]:
        return (bool(self.fences), self.fences, self.markdown, self.is_json)

    @classmethod
    def of(cls, text: str) -> Features:
        marks = [
            name
            for name, pattern in (
                ("heading", _HEADING),
                ("list", _LIST),
                ("emphasis", _EMPHASIS),
                ("table", _TABLE),
            )
            if pattern.search(text)
        ]
        fences = tuple(sorted({m.lower() for m in _FENCE.findall(text)[::2]}))
        stripped = text.strip()
        is_json = stripped[:1] in ("{", "[") and parse_json(stripped)[0]
        return cls(len(text), is_refusal(text), fences, tuple(marks), language(text), is_json)
