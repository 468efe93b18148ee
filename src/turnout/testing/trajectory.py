"""Assertions on what an agent did, tolerant where a correct agent may vary.

A trajectory is the list of tool calls an agent made. Four ways to compare it with an expected
one (the modes of LangChain's agentevals, same names):
- strict: the same calls in the same order;
- unordered: the same calls in any order;
- subset: every actual call is among the expected ones (nothing unexpected was done);
- superset: every expected call was made (extra calls allowed).
Expected arguments may be values or matchers (`ANY`, `Regex`, `OneOf`, any predicate), and by
default only the arguments an expectation names are compared.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema
import orjson

Mode = Literal["strict", "unordered", "subset", "superset"]


class _Any:
    def __call__(self, value: Any) -> bool:
        return True

    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()


@dataclass(frozen=True)
class Regex:
    pattern: str
    flags: int = re.IGNORECASE

    def __call__(self, value: Any) -> bool:
        return isinstance(value, str) and re.search(self.pattern, value, self.flags) is not None

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


@dataclass(frozen=True)
class OneOf:
    options: tuple[Any, ...]

    def __init__(self, *options: Any) -> None:
        object.__setattr__(self, "options", options)

    def __call__(self, value: Any) -> bool:
        return any(_value_matches(o, value) for o in self.options)

    def __repr__(self) -> str:
        return f"OneOf{self.options!r}"


def _value_matches(expected: Any, actual: Any) -> bool:
    if callable(expected) and not isinstance(expected, type):
        return bool(expected(actual))
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return all(k in actual and _value_matches(v, actual[k]) for k, v in expected.items())
    return bool(expected == actual)


@dataclass(frozen=True)
class ToolCall:
    """One call an agent made: the tool's name and its parsed arguments."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        return f"{self.name}({args})"


@dataclass(frozen=True)
class Call:
    """An expected call: `args=None` ignores arguments; `exact=True` forbids extra ones."""

    name: str
    args: Mapping[str, Any] | None = None
    exact: bool = False

    def matches(self, call: ToolCall) -> bool:
        if call.name != self.name:
            return False
        if self.args is None:
            return True
        if self.exact and set(call.arguments) != set(self.args):
            return False
        return all(
            k in call.arguments and _value_matches(v, call.arguments[k])
            for k, v in self.args.items()
        )

    def __repr__(self) -> str:
        if self.args is None:
            return f"{self.name}(…)"
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.name}({args}{', exactly' if self.exact else ''})"


def _parse_args(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, str | bytes):
        try:
            value = orjson.loads(raw or "{}")
        except orjson.JSONDecodeError:
            return {"<unparsed>": raw}
        return value if isinstance(value, dict) else {"<value>": value}
    return {}


def _attr(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def tool_calls(source: Iterable[Any]) -> list[ToolCall]:
    """Tool calls from a trajectory in any usual shape: ToolCall objects, (name, args) pairs,
    {"name", "arguments"} dicts, or OpenAI chat messages (dicts or SDK objects) whose
    assistant turns carry `tool_calls`."""
    out: list[ToolCall] = []
    for item in source:
        if isinstance(item, ToolCall):
            out.append(item)
        elif isinstance(item, tuple) and len(item) == 2:
            out.append(ToolCall(str(item[0]), _parse_args(item[1])))
        elif _attr(item, "tool_calls"):
            for call in _attr(item, "tool_calls"):
                fn = _attr(call, "function")
                out.append(ToolCall(str(_attr(fn, "name")), _parse_args(_attr(fn, "arguments"))))
        elif _attr(item, "name") is not None and _attr(item, "role") is None:
            args = _attr(item, "arguments")
            out.append(ToolCall(str(_attr(item, "name")), _parse_args(args)))
    return out


def _expected(items: Iterable[Call | str | tuple[str, Mapping[str, Any]]]) -> list[Call]:
    out = []
    for e in items:
        if isinstance(e, Call):
            out.append(e)
        elif isinstance(e, str):
            out.append(Call(e))
        else:
            out.append(Call(e[0], e[1]))
    return out


def _max_matching(actual: list[ToolCall], expected: list[Call]) -> dict[int, int]:
    """A maximum matching expected index → actual index (Kuhn's augmenting paths)."""
    owner: dict[int, int] = {}  # actual index → expected index

    def place(e: int, seen: set[int]) -> bool:
        for a, call in enumerate(actual):
            if a in seen or not expected[e].matches(call):
                continue
            seen.add(a)
            if a not in owner or place(owner[a], seen):
                owner[a] = e
                return True
        return False

    for e in range(len(expected)):
        place(e, set())
    return {e: a for a, e in owner.items()}


@dataclass
class TrajectoryMatch:
    ok: bool
    mode: Mode
    actual: list[ToolCall]
    expected: list[Call]
    problems: list[str]

    def __bool__(self) -> bool:
        return self.ok

    def explain(self) -> str:
        lines = [f"trajectory does not match ({self.mode}):", *[f"  - {p}" for p in self.problems]]
        lines.append("  expected: " + ", ".join(map(repr, self.expected)))
        lines.append("  actual:   " + ", ".join(map(repr, self.actual)))
        return "\n".join(lines)


def match_trajectory(
    actual: Iterable[Any],
    expected: Iterable[Call | str | tuple[str, Mapping[str, Any]]],
    mode: Mode = "strict",
) -> TrajectoryMatch:
    calls = tool_calls(actual)
    want = _expected(expected)
    problems: list[str] = []
    if mode == "strict":
        if len(calls) != len(want):
            problems.append(f"{len(calls)} calls made, {len(want)} expected")
        for i, (a, e) in enumerate(zip(calls, want, strict=False)):
            if not e.matches(a):
                problems.append(f"call {i + 1}: expected {e!r}, got {a!r}")
        return TrajectoryMatch(not problems, mode, calls, want, problems)
    if mode not in ("unordered", "subset", "superset"):
        raise ValueError(f"unknown trajectory mode {mode!r}")
    matched = _max_matching(calls, want)
    used = set(matched.values())
    missing = [want[e] for e in range(len(want)) if e not in matched]
    extra = [calls[a] for a in range(len(calls)) if a not in used]
    if mode in ("unordered", "superset"):
        problems += [f"expected call not made: {e!r}" for e in missing]
    if mode in ("unordered", "subset"):
        problems += [f"unexpected call: {a!r}" for a in extra]
    return TrajectoryMatch(not problems, mode, calls, want, problems)


def assert_trajectory(
    actual: Iterable[Any],
    expected: Iterable[Call | str | tuple[str, Mapping[str, Any]]],
    mode: Mode = "strict",
) -> None:
    result = match_trajectory(actual, expected, mode)
    if not result.ok:
        raise AssertionError(result.explain())


def assert_json_schema(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value` (JSON text or a parsed value) conforms to `schema`; returns the parsed value.

    The message names where the first violation is, as `at path: what`.
    """
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise AssertionError(f"not valid JSON: {exc}") from None
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise AssertionError(f"JSON does not match the schema at {where}: {error.message}")
    return value
