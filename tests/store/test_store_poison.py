"""One run cannot poison a batch on either store: odd values are kept as markers, a row the
database refuses is stored bare, and every other record of the batch is written."""

from __future__ import annotations

import math
from collections.abc import Callable

from turnout.lifecycle.run import Run
from turnout.lifecycle.states import State
from turnout.store.read import open_reader
from turnout.store.writer import RecordWriter


def finished(run_id: str, **fields: object) -> Run:
    run = Run(id=run_id, model="assistant", operation="chat", request_body={"messages": []})
    for k, v in fields.items():
        setattr(run, k, v)
    run.transition(State.REJECTED, status=400, error="bad")
    return run


def test_odd_runs_among_a_batch_cost_no_other_record(new_store: Callable[[], str]) -> None:
    url = new_store()
    runs = [finished(f"c{i:02d}", error="kept") for i in range(40)]
    runs[3].error = "bad \ud800 text"  # a lone surrogate: no database takes it as text
    runs[5].error = "nul \x00 inside"
    runs[7].http_status = 2**70
    runs[9].request_body = {"deep": [[[[["x"]]]]], "nul": "a\x00b", "big": 2**80}
    runs[11].started = math.nan
    writer = RecordWriter(url, "full", 60, 1000)
    writer.open()
    try:
        for run in runs:
            writer.submit(run)
        writer.flush()
        assert (writer.written, writer.dropped) == (40, 0)
    finally:
        writer.close()
    with open_reader(url) as reader:
        listed = reader.requests(limit=100)
        assert len(listed) == 40
        assert reader.request("c03")["error"].startswith("unrecordable: UnicodeEncodeError")
        assert reader.request("c05")["error"] in ("nul \x00 inside", "nul \ufffd inside")
        assert reader.request("c07")["http_status"] == 2**63 - 1
        body = reader.request("c09")["request_body"]
        assert body == {"deep": [[[[["x"]]]]], "nul": "a\x00b", "big": str(2**80)}
        assert math.isfinite(reader.request("c11")["started"])  # stored bare, at write time
        assert reader.request("c12")["error"] == "kept"


def test_erasing_a_stored_response_keeps_its_run_and_marks_it(
    new_store: Callable[[], str],
) -> None:
    url = new_store()
    run = finished("e1", attrs={"conversation_prefix": "h1"})
    run.response_body = {"output": "secret answer"}
    writer = RecordWriter(url, "full", 60, 1000)
    writer.open()
    try:
        writer.submit(run)  # queued: erasing writes it first
        assert writer.erase_bodies("e1") is True
        assert writer.erase_bodies("absent") is False
    finally:
        writer.close()
    with open_reader(url) as reader:
        rec = reader.request("e1")
    assert (rec["request_body"], rec["response_body"]) == (None, None)
    assert rec["attrs"] == {"conversation_prefix": "h1", "responses": {"deleted": True}}
    assert rec["outcome"] == "rejected"
