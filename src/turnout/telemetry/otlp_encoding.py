"""Spans as an OTLP `ExportTraceServiceRequest`, written directly rather than through generated
protobuf classes.

Building one protobuf object per span, event, attribute and value is what exporting cost: the
encoding held the interpreter lock for about a sixth of the gateway's CPU. The wire format is
small and stable; it is written here, with the encoded resource, scope and attribute keys cached.
The bytes are those the OpenTelemetry SDK's own encoder writes (tests/test_otlp_export.py).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

log = logging.getLogger("turnout.telemetry")

_U64 = (1 << 64) - 1
_f64 = struct.Struct("<Q").pack
_d64 = struct.Struct("<d").pack
_f32 = struct.Struct("<I").pack
# Span flags: the parent's remoteness is known (0x100), and it is remote (0x200).
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200


_SMALL = [bytes((i,)) for i in range(0x80)]


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (`tag` is its key: field number << 3 | 2)."""
    n = len(payload)
    return tag + (_SMALL[n] if n < 0x80 else _varint(n)) + payload


def _text(tag: bytes, value: str) -> bytes:
    return _field(tag, value.encode()) if value else b""


def _value(value: Any) -> bytes:
    """An AnyValue; its one field is written even when it holds the default (a oneof)."""
    if type(value) is str:  # most values: first, before the general checks
        return _field(b"\x0a", value.encode())
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        if not -(1 << 63) <= value < 1 << 63:
            raise TypeError(f"{value} does not fit in 64 bits")
        return b"\x18" + _varint(value & _U64)
    if isinstance(value, float):
        return b"\x21" + _d64(value)
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _value(v)) for v in value))
    if isinstance(value, Mapping):
        pairs = b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        return _field(b"\x32", pairs)
    raise TypeError(f"a span attribute cannot be a {type(value).__name__}")


_keys: dict[str, bytes] = {}


def _key_value(key: str, value: Any) -> bytes:
    encoded = _keys.get(key)
    if encoded is None:
        encoded = _field(b"\x0a", key.encode())
        if len(_keys) < 4096:  # attribute keys are few; a flood of new ones is not kept
            _keys[key] = encoded
    return encoded + _field(b"\x12", _value(value))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    out = []
    for key, value in attributes.items():
        try:
            out.append(_field(tag, _key_value(key, value)))
        except TypeError as exc:
            log.warning("telemetry: attribute %s left out of the export (%s)", key, exc)
    return b"".join(out)


def _count(tag: bytes, n: int) -> bytes:
    return tag + _varint(n) if n else b""


def _flags(parent: Any) -> bytes:
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)
    return b"\x85\x01" + _f32(flags)  # field 16, fixed32


def _trace_state(state: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in state.items()) if state is not None else ""


def _span(span: ReadableSpan) -> bytes:
    ctx = span.get_span_context()
    assert ctx is not None
    parts = [
        b"\x0a\x10" + ctx.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + ctx.span_id.to_bytes(8, "big"),
        _text(b"\x1a", _trace_state(ctx.trace_state)),
    ]
    if span.parent is not None:
        parts.append(b"\x22\x08" + span.parent.span_id.to_bytes(8, "big"))
    parts.append(_text(b"\x2a", span.name))
    parts.append(_count(b"\x30", span.kind.value + 1))  # the SDK counts from 0, OTLP from 1
    if span.start_time:
        parts.append(b"\x39" + _f64(span.start_time))
    if span.end_time:
        parts.append(b"\x41" + _f64(span.end_time))
    parts.append(_attributes(b"\x4a", span.attributes))
    parts.append(_count(b"\x50", span.dropped_attributes))
    for event in span.events:
        body = [b"\x09" + _f64(event.timestamp)] if event.timestamp else []
        body.append(_text(b"\x12", event.name))
        body.append(_attributes(b"\x1a", event.attributes))
        body.append(_count(b"\x20", event.dropped_attributes))
        parts.append(_field(b"\x5a", b"".join(body)))
    parts.append(_count(b"\x60", span.dropped_events))
    for link in span.links:
        body = [
            b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + link.context.span_id.to_bytes(8, "big"),
            _attributes(b"\x22", link.attributes),
            _count(b"\x28", link.dropped_attributes),
            b"\x35" + _f32(_HAS_IS_REMOTE | (_IS_REMOTE if link.context.is_remote else 0)),
        ]
        parts.append(_field(b"\x6a", b"".join(body)))
    parts.append(_count(b"\x70", span.dropped_links))
    status = span.status
    if status is not None:
        text = _text(b"\x12", status.description or "")
        parts.append(_field(b"\x7a", text + _count(b"\x18", status.status_code.value)))
    parts.append(_flags(span.parent))
    return b"".join(parts)


_scopes: dict[int, tuple[Any, bytes]] = {}  # id → (resource or scope, its encoding)


def _cached(thing: Any, encode: Any) -> bytes:
    """A gateway has one resource and a scope or two: each is encoded once. The object is held
    with its encoding, so its id cannot be reused by another while cached."""
    hit = _scopes.get(id(thing))
    if hit is not None and hit[0] is thing:
        return hit[1]
    if len(_scopes) >= 256:
        _scopes.clear()
    encoded = encode(thing)
    _scopes[id(thing)] = (thing, encoded)
    return encoded


def _resource(resource: Any) -> bytes:
    return _field(b"\x0a", _attributes(b"\x0a", resource.attributes))


def _scope(scope: Any) -> bytes:
    if scope is None:
        return _field(b"\x0a", b"")
    body = _text(b"\x0a", scope.name) + _text(b"\x12", scope.version or "")
    return _field(b"\x0a", body + _attributes(b"\x1a", scope.attributes))


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """An `ExportTraceServiceRequest`: the spans grouped by resource, then by scope."""
    grouped: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope or None
        scopes = grouped.setdefault(id(resource), (resource, {}))[1]
        scopes.setdefault(id(scope), (scope, []))[1].append(_field(b"\x12", _span(span)))
    out = []
    for resource, scopes in grouped.values():
        body = [_cached(resource, _resource)]
        for scope, encoded in scopes.values():
            head = _cached(scope, _scope)
            url = _text(b"\x1a", scope.schema_url or "") if scope is not None else b""
            body.append(_field(b"\x12", head + b"".join(encoded) + url))
        body.append(_text(b"\x1a", resource.schema_url or ""))
        out.append(_field(b"\x0a", b"".join(body)))
    return b"".join(out)
