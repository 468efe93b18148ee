"""Every string a model reads in a tool definition, with where it sits.

Poisoning is not confined to `description`: parameter names, titles, enum values, defaults and
examples all reach the model's context ("full-schema poisoning").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

_TEXT_KEYS = ("description", "title", "default", "examples", "enum", "const", "pattern", "format")


def tool_texts(definition: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key in ("name", "title", "description"):
        value = definition.get(key)
        if isinstance(value, str):
            yield key, value
    for key in ("inputSchema", "outputSchema"):
        schema = definition.get(key)
        if isinstance(schema, dict):
            yield from schema_texts(schema, key)
    annotations = definition.get("annotations")
    if isinstance(annotations, dict) and isinstance(annotations.get("title"), str):
        yield "annotations.title", annotations["title"]


def schema_texts(schema: Any, where: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    if depth > 8 or not isinstance(schema, dict):
        return
    for key in _TEXT_KEYS:
        yield from _strings(schema.get(key), f"{where}.{key}")
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, sub in properties.items():
            yield f"{where}.properties", str(name)  # the name itself is read by the model
            yield from schema_texts(sub, f"{where}.properties.{name}", depth + 1)
    for key in ("items", "additionalProperties", "not"):
        yield from schema_texts(schema.get(key), f"{where}.{key}", depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or []):
            yield from schema_texts(sub, f"{where}.{key}[{i}]", depth + 1)
    for name, sub in (schema.get("$defs") or schema.get("definitions") or {}).items():
        yield from schema_texts(sub, f"{where}.$defs.{name}", depth + 1)


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{where}[{i}]")
