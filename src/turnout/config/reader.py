"""Walking parsed YAML with the key path in hand, so every error says where it is."""

from __future__ import annotations

from typing import Any

from turnout.errors import TurnoutError


class ConfigError(TurnoutError):
    """A config problem, located: `file: key.path: what is wrong`."""

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source = source
        self.path = path
        self.message = message
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {message}")


class _Reader:
    """Walks a parsed YAML mapping, keeping the key path for error messages."""

    def __init__(self, source: str, data: Any, path: str = "") -> None:
        self.source = source
        self.path = path
        if not isinstance(data, dict):
            raise self.error(f"expected a mapping, got {_kind(data)}")
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def error(self, message: str, key: str | None = None) -> ConfigError:
        return ConfigError(self.source, self._join(key) if key else self.path, message)

    def _join(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def child(self, key: str) -> _Reader:
        self.used.add(key)
        value = self.data.get(key)
        return _Reader(self.source, {} if value is None else value, self._join(key))

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.used.add(key)
        value = self.data.get(key)
        if value is None:
            return default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a `true` where a number belongs is still a mistake.
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(f"expected {_names(kinds)}, got a boolean", key)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds):
            raise self.error(f"expected {_names(kinds)}, got {_kind(value)}", key)
        return value

    def number(self, key: str, default: Any, *, minimum: float, integer: bool = False) -> Any:
        value = self.get(key, int if integer else float, default)
        if value is not None and value < minimum:
            raise self.error(f"must be ≥ {minimum}, got {value}", key)
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value: str = self.get(key, str, default)
        if value not in choices:
            raise self.error(f"must be one of {', '.join(choices)}; got {value!r}", key)
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.get(key, list, [])
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"expected a string, got {_kind(item)}", f"{key}[{i}]")
        return tuple(value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error("unknown key", unknown[0])


def _kind(value: Any) -> str:
    kinds = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    kinds |= {int: "an integer", float: "a number"}
    return kinds.get(type(value), "null" if value is None else f"a {type(value).__name__}")


def _names(kinds: tuple[type, ...]) -> str:
    words = {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "a list",
        bool: "a boolean",
    }
    return " or ".join(words.get(k, k.__name__) for k in kinds)
