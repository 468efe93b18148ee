"""A cassette: recorded model answers, keyed by the canonical request, one readable JSON file.

Entries are found by (key, repeat): the n-th time a test asks the same thing it gets the n-th
recorded answer, so an agent that asks twice and gets two different answers replays faithfully.
Several tests (and pytest-xdist workers) may share one file: saving merges under a lock, and
never overwrites what another test recorded. The format: docs/cassette-format.md.
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
from turnout.testing._lock import folder_lock
from turnout.testing.cassette_schema import FORMAT_VERSION, CassetteError, check
from turnout.testing.keys import explain_miss, request_key
from turnout.testing.redact import Redactor

__all__ = ["FORMAT_VERSION", "Cassette", "CassetteError", "CassetteMiss", "Entry", "Mode"]
# How a stream whose reader stopped early is recorded: replayed past its end, it breaks.
PARTIAL = "the recorded stream ends here: its reader stopped early while recording"


class Mode(enum.StrEnum):
    """When the real model is called (VCR's record modes, same names)."""

    NONE = "none"  # replay only; an unknown request fails (the CI default)
    ONCE = "once"  # record if the file holds nothing of this test's yet, else like `none`
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
    recorded_by: str | None = None  # the test that recorded it: `all` re-records only its own

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "repeat": self.repeat}
        if self.recorded_by is not None:
            out["recorded_by"] = self.recorded_by
        out["request"] = self.request
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
            recorded_by=data.get("recorded_by"),
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


def read_entries(path: Path) -> dict[tuple[str, int], Entry]:
    """The entries of a cassette file, checked against the format first."""
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise CassetteError(f"{path}: not a valid turnout cassette: not JSON ({exc})") from None
    check(doc, path)
    return {(e.key, e.repeat): e for e in map(Entry.from_json, doc["entries"])}


@dataclass
class Cassette:
    """The recorded calls of one test (or one `turnout serve --record` session)."""

    path: Path | None
    mode: Mode = Mode.NONE
    redactor: Redactor = field(default_factory=Redactor.from_environment)
    autosave: bool = False
    owner: str | None = None  # who records into it (a test's node id), kept on each entry
    existed: bool = False
    has_own: bool = False  # the file holds entries this owner recorded (or unattributed ones)
    recorded: dict[tuple[str, int], Entry] = field(default_factory=dict)
    new: list[Entry] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    replayed: int = 0
    _asked: dict[str, int] = field(default_factory=dict)
    _fresh: dict[tuple[str, int], Entry] = field(default_factory=dict)
    _missed: dict[str, int] = field(default_factory=dict)  # key → its first miss's number
    _written: set[tuple[str, int]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None,
        mode: Mode | str = Mode.NONE,
        *,
        redactor: Redactor | None = None,
        autosave: bool = False,
        owner: str | None = None,
    ) -> Cassette:
        """Open a cassette; raises CassetteError (naming the file, entry and field) if the file
        does not follow the format."""
        p = Path(path) if path is not None else None
        c = cls(p, Mode(mode), redactor or Redactor.from_environment(), autosave, owner)
        if p is not None and p.is_file():
            c.existed = True
            c.recorded = read_entries(p)
            c.has_own = any(e.recorded_by in (None, owner) for e in c.recorded.values())
        return c

    # -- what the mode allows ------------------------------------------------------------------

    @property
    def replays(self) -> bool:
        return self.mode is not Mode.ALL

    @property
    def records(self) -> bool:
        """Whether a request without an answer may go to the real model."""
        return self.mode in (Mode.ALL, Mode.NEW_EPISODES) or (
            self.mode is Mode.ONCE and not self.has_own
        )

    @property
    def records_everything(self) -> bool:
        """Whether this session records from its first call (the model is started up front)."""
        return self.mode is Mode.ALL or (self.mode is Mode.ONCE and not self.has_own)

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

    def unslot(self, key: str, repeat: int) -> None:
        """The call in slot (key, repeat) did not count — an injected fault replaced its
        answer — so the next identical call takes the same slot (and the same answer)."""
        with self._lock:
            if self._asked.get(key) == repeat + 1:
                self._asked[key] = repeat

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
        with self._lock:
            first = self._missed.get(key)
        if first is not None:  # asked again (a retry): the diff was shown with the first miss
            why = f"the same request as miss #{first + 1} above, asked again"
        elif not self.existed and self.path is not None:
            why = f"there is no cassette at {where} (record it with a mode other than none)"
        else:
            seen = [e.request for e in self.recorded.values()]
            why = explain_miss(request, seen)
        msg = (
            f"turnout cassette {where} (mode {self.mode.value}) has no answer for this request "
            f"(key {key}, repeat #{repeat + 1}): {why}"
        )
        with self._lock:
            self._missed.setdefault(key, len(self.misses))
            self.misses.append(msg)
        return CassetteMiss(msg)

    # -- recording --------------------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        entry.request = self.redactor.value(entry.request)
        entry.completion = self.redactor.value(entry.completion)
        entry.events = self.redactor.value(entry.events)
        entry.error = self.redactor.value(entry.error)
        entry.recorded_by = self.owner
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

    def merged(self, on_disk: dict[tuple[str, int], Entry]) -> list[Entry]:
        """What the file holds after this session, given what it holds now: `all` replaces
        this owner's entries; an entry someone else recorded is never overwritten."""
        kept = dict(on_disk)
        if self.mode is Mode.ALL:
            kept = {s: e for s, e in kept.items() if e.recorded_by not in (None, self.owner)}
        with self._lock:
            mine = {(e.key, e.repeat): e for e in self.new}  # a re-recorded slot: the last wins
            for slot, entry in mine.items():
                if slot not in kept or slot in self._written:
                    kept[slot] = entry
        return list(kept.values())

    def save(self) -> Path | None:
        """Merge what this session recorded into the file, under a lock shared by every process;
        written atomically, so a kill leaves the previous version."""
        if self.path is None or not self.new:
            return None
        with folder_lock(self.path.parent):
            on_disk = read_entries(self.path) if self.path.is_file() else {}
            kept = self.merged(on_disk)
            doc = {
                "turnout_cassette": FORMAT_VERSION,
                "note": "recorded model calls; replayed by turnout.testing. Review like code.",
                "entries": [e.as_json() for e in kept],
            }
            data = orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(self.path)
            with self._lock:  # only slots whose entry is ours on disk now
                ours = {id(e) for e in self.new}
                self._written.update((e.key, e.repeat) for e in kept if id(e) in ours)
        return self.path
