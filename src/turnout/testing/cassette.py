"""A cassette: recorded model answers, keyed by the canonical request, one readable JSON file.

Entries are found by (key, repeat): the n-th time a test asks the same thing it gets the n-th
recorded answer, so an agent that asks twice and gets two different answers replays faithfully.
"""

from __future__ import annotations

import enum
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from turnout.backends.base import Failure, StreamChunk, UpstreamError
from turnout.testing.keys import explain_miss, request_key
from turnout.testing.redact import Redactor

FORMAT_VERSION = 1
# How a stream whose reader stopped early is recorded: replayed past its end, it breaks.
PARTIAL = "the recorded stream ends here: its reader stopped early while recording"


class Mode(enum.StrEnum):
    """When the real model is called (VCR's record modes, same names)."""

    NONE = "none"  # replay only; an unknown request fails (the CI default)
    ONCE = "once"  # record if the cassette file does not exist yet, else like `none`
    NEW_EPISODES = "new_episodes"  # replay what is known, record what is new
    ALL = "all"  # call the model for everything and rewrite the cassette


class CassetteMiss(UpstreamError):
    """No recorded answer for a request, in a mode that may not ask the model."""

    def __init__(self, message: str) -> None:
        # Not retryable: the same request would miss again. 400 reaches the client as-is.
        super().__init__(Failure.CLIENT_ERROR, message, status=400)


def event_bytes(data: dict[str, Any]) -> bytes:
    """The SSE event turnout sends for a parsed chunk (what the engine does for `raw == b''`)."""
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _event_record(chunk: StreamChunk) -> dict[str, Any]:
    raw = chunk.raw or event_bytes(chunk.data)
    # Stored parsed when that is byte-exact (readable), else as the upstream's own bytes.
    if raw == event_bytes(chunk.data):
        return {"data": chunk.data}
    return {"raw": raw.decode("utf-8")}


def _event_chunk(event: dict[str, Any]) -> StreamChunk:
    if "data" in event:
        return StreamChunk(event["data"], event_bytes(event["data"]))
    raw = event["raw"].encode("utf-8")
    payload = b"\n".join(
        line[5:].lstrip() for line in raw.split(b"\n") if line.startswith(b"data:")
    )
    return StreamChunk(orjson.loads(payload), raw)


def _error_record(err: UpstreamError) -> dict[str, Any]:
    out: dict[str, Any] = {"failure": err.failure.value, "message": err.message}
    if err.status is not None:
        out["status"] = err.status
    if err.retry_after_s is not None:
        out["retry_after_s"] = err.retry_after_s
    return out


def _error(record: dict[str, Any]) -> UpstreamError:
    return UpstreamError(
        Failure(record["failure"]),
        record["message"],
        status=record.get("status"),
        retry_after_s=record.get("retry_after_s"),
    )


@dataclass(slots=True)
class Entry:
    """One recorded model call: what was asked and what came back (an answer or a failure)."""

    key: str
    repeat: int
    request: dict[str, Any]
    completion: dict[str, Any] | None = None
    events: list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "repeat": self.repeat, "request": self.request}
        response: dict[str, Any] = {}
        if self.completion is not None:
            response["completion"] = self.completion
        if self.events is not None:
            response["stream"] = self.events
        if self.error is not None:
            response["error"] = self.error
        out["response"] = response
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        response = data.get("response") or {}
        return cls(
            key=data["key"],
            repeat=int(data["repeat"]),
            request=data["request"],
            completion=response.get("completion"),
            events=response.get("stream"),
            error=response.get("error"),
        )

    def body(self) -> dict[str, Any]:
        if self.error is not None and self.completion is None:
            raise _error(self.error)
        assert self.completion is not None, f"entry {self.key}#{self.repeat} is not a completion"
        copy: dict[str, Any] = orjson.loads(orjson.dumps(self.completion))  # callers may mutate
        return copy

    def chunks(self) -> list[StreamChunk]:
        return [_event_chunk(e) for e in self.events or ()]

    def failure(self) -> UpstreamError | None:
        return _error(self.error) if self.error is not None else None


@dataclass
class Cassette:
    """The recorded calls of one test (or one `turnout serve --record` session)."""

    path: Path | None
    mode: Mode = Mode.NONE
    redactor: Redactor = field(default_factory=Redactor.from_environment)
    autosave: bool = False
    existed: bool = False
    recorded: dict[tuple[str, int], Entry] = field(default_factory=dict)
    new: list[Entry] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    replayed: int = 0
    _asked: dict[str, int] = field(default_factory=dict)
    _fresh: dict[tuple[str, int], Entry] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None,
        mode: Mode | str = Mode.NONE,
        *,
        redactor: Redactor | None = None,
        autosave: bool = False,
    ) -> Cassette:
        p = Path(path) if path is not None else None
        c = cls(p, Mode(mode), redactor or Redactor.from_environment(), autosave)
        if p is not None and p.is_file():
            c.existed = True
            data = orjson.loads(p.read_bytes())
            if data.get("turnout_cassette") != FORMAT_VERSION:
                raise ValueError(f"{p}: not a turnout cassette (version {FORMAT_VERSION})")
            for raw in data.get("entries") or ():
                e = Entry.from_json(raw)
                c.recorded[(e.key, e.repeat)] = e
        return c

    # -- what the mode allows ------------------------------------------------------------------

    @property
    def replays(self) -> bool:
        return self.mode is not Mode.ALL

    @property
    def records(self) -> bool:
        """Whether a request without an answer may go to the real model."""
        return self.mode in (Mode.ALL, Mode.NEW_EPISODES) or (
            self.mode is Mode.ONCE and not self.existed
        )

    @property
    def records_everything(self) -> bool:
        return self.mode is Mode.ALL or (self.mode is Mode.ONCE and not self.existed)

    # -- lookups ---------------------------------------------------------------------------------

    def slot(self, canonical: dict[str, Any]) -> tuple[dict[str, Any], str, int]:
        """The redacted request, its key, and which repeat of it this call is."""
        request = self.redactor.value(canonical)
        key = request_key(request)
        with self._lock:
            repeat = self._asked.get(key, 0)
            self._asked[key] = repeat + 1
        return request, key, repeat

    def rewind(self) -> None:
        """Start the run again from its first call (repeat counts restart); for repeated runs
        of one recorded scenario."""
        with self._lock:
            self._asked.clear()

    def find(self, key: str, repeat: int) -> Entry | None:
        if not self.replays:
            return None
        # A rewound run also replays what this session recorded.
        entry = self.recorded.get((key, repeat)) or self._fresh.get((key, repeat))
        if entry is not None:
            with self._lock:
                self.replayed += 1
        return entry

    def miss(self, request: dict[str, Any], key: str, repeat: int) -> CassetteMiss:
        """The error for a request the cassette cannot answer; remembered for the test report."""
        where = str(self.path) if self.path is not None else "(in memory)"
        if not self.existed and self.path is not None:
            why = f"there is no cassette at {where} (record it with a mode other than none)"
        else:
            seen = [e.request for e in self.recorded.values()]
            why = explain_miss(request, seen)
        msg = (
            f"turnout cassette {where} (mode {self.mode.value}) has no answer for this request "
            f"(key {key}, repeat #{repeat + 1}): {why}"
        )
        with self._lock:
            self.misses.append(msg)
        return CassetteMiss(msg)

    # -- recording --------------------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        entry.request = self.redactor.value(entry.request)
        entry.completion = self.redactor.value(entry.completion)
        entry.events = self.redactor.value(entry.events)
        entry.error = self.redactor.value(entry.error)
        with self._lock:
            self.new.append(entry)
            self._fresh[(entry.key, entry.repeat)] = entry
        if self.autosave:
            self.save()

    def record_completion(
        self, request: dict[str, Any], key: str, repeat: int, body: dict[str, Any]
    ) -> None:
        self.add(Entry(key, repeat, request, completion=orjson.loads(orjson.dumps(body))))

    def record_stream(
        self,
        request: dict[str, Any],
        key: str,
        repeat: int,
        chunks: list[StreamChunk],
        error: UpstreamError | None = None,
        *,
        partial: bool = False,
    ) -> None:
        events = [_event_record(c) for c in chunks]
        if partial:
            error = UpstreamError(Failure.BROKEN_STREAM, PARTIAL)
        self.add(
            Entry(
                key, repeat, request, events=events, error=_error_record(error) if error else None
            )
        )

    def record_error(
        self, request: dict[str, Any], key: str, repeat: int, error: UpstreamError
    ) -> None:
        self.add(Entry(key, repeat, request, error=_error_record(error)))

    def entries(self) -> list[Entry]:
        """What the file holds after this session: old entries kept unless the mode rewrites."""
        with self._lock:
            kept = {} if self.records_everything else dict(self.recorded)
            for e in self.new:
                kept[(e.key, e.repeat)] = e
        return list(kept.values())

    def save(self) -> Path | None:
        """Write the file if this session recorded anything; atomically, so a kill leaves the
        previous version."""
        if self.path is None or not self.new:
            return None
        doc = {
            "turnout_cassette": FORMAT_VERSION,
            "note": "recorded model calls; replayed by turnout.testing. Review like code.",
            "entries": [e.as_json() for e in self.entries()],
        }
        data = orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(self.path)
        return self.path
