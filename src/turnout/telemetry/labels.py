"""Labelled metrics' children, remembered: `labels()` costs more than the increment itself, and
every label here takes configured values only, so what is remembered stays small."""

from __future__ import annotations

from typing import Any


class Children:
    def __init__(self) -> None:
        self._by: dict[tuple[int, tuple[str, ...]], Any] = {}

    def __call__(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), labels)
        child = self._by.get(key)
        if child is None:
            child = self._by[key] = metric.labels(*labels)
        return child
