"""One request cannot poison the record: its row is written with markers, the batch goes on."""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

from turnout.lifecycle.run import Attempt, Run
from turnout.lifecycle.states import State
from turnout.store.query import get_request, list_requests
from turnout.store.writer import RecordWriter

Factory = Callable[[str], RunningGateway]


def nested(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def finished(run_id: str, **fields: Any) -> Run:
    run = Run(id=run_id, model="assistant", operation="chat", request_body={"messages": []})
    for k, v in fields.items():
        setattr(run, k, v)
    run.transition(State.REJECTED, status=400, error="bad")
    return run


def write(tmp_path: Path, runs: list[Run], mode: str = "full") -> RecordWriter:
    writer = RecordWriter(f"sqlite:///{tmp_path / 'r.db'}", mode, 60, 10_000)
    writer.open()
    for run in runs:
        writer.submit(run)
    writer.flush()
    writer.close()
    return writer


def test_a_body_deeper_than_the_serialiser_writes_is_kept_to_a_marker(tmp_path: Path) -> None:
    runs = [finished("a0"), finished("a1", request_body={"messages": nested(300)}), finished("a2")]
    writer = write(tmp_path, runs)
    assert (writer.written, writer.dropped) == (3, 0)
    bottom, levels = get_request(f"sqlite:///{tmp_path / 'r.db'}", "a1")["request_body"], 0
    while not (isinstance(bottom, dict) and "unrecordable" in bottom):
        bottom = bottom["messages"] if isinstance(bottom, dict) else bottom[0]
        levels += 1
    assert bottom == {"unrecordable": "nested deeper than 200 levels"}
    assert levels == 200  # what is above the cut is kept
    assert [r["id"] for r in list_requests(f"sqlite:///{tmp_path / 'r.db'}")] == ["a2", "a1", "a0"]


def test_integers_past_64_bits_are_clamped_in_columns_and_exact_text_in_json(
    tmp_path: Path,
) -> None:
    attempt = Attempt(1, "a", started=time.time(), prompt_tokens=2**70, completion_tokens=3)
    doubled = {"model": "assistant", "max_tokens": 2 * (2**64 - 1)}
    runs = [finished("b0", request_body=doubled, attempts=[attempt]), finished("b1")]
    writer = write(tmp_path, runs)
    assert (writer.written, writer.dropped) == (2, 0)
    rec = get_request(f"sqlite:///{tmp_path / 'r.db'}", "b0")
    assert rec["request_body"]["max_tokens"] == str(2 * (2**64 - 1))
    assert rec["prompt_tokens"] == 2**63 - 1  # the column clamps
    assert rec["attempt_log"][0]["prompt_tokens"] == str(2**70)


def test_a_row_the_database_refuses_is_stored_bare_and_its_batch_is_kept(
    tmp_path: Path,
) -> None:
    # A lone surrogate cannot be bound as SQLite text: the executemany of the batch fails.
    runs = [finished(f"c{i}", error="kept") for i in range(50)]
    runs[17].error = "bad \ud800 text"
    writer = write(tmp_path, runs)
    assert (writer.written, writer.dropped, writer.salvaged) == (50, 0, 1)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    rec = get_request(url, "c17")
    assert rec["outcome"] == "rejected"
    assert rec["error"].startswith("unrecordable: UnicodeEncodeError")
    assert [e["state"] for e in rec["events"]] == ["received", "rejected"]
    assert get_request(url, "c18")["error"] == "kept"


def test_values_json_cannot_hold_become_markers(tmp_path: Path) -> None:
    runs = [
        finished("d0", request_body={"when": object(), 3: "int key"}),
        finished("d1", attempts=[Attempt(1, "a", started=time.time(), cost_usd=math.nan)]),
    ]
    writer = write(tmp_path, runs)
    assert (writer.written, writer.dropped) == (2, 0)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert get_request(url, "d0")["request_body"] == {
        "when": {"unrecordable": "a object"},
        "3": "int key",
    }
    assert get_request(url, "d1")["cost_usd"] == 0.0  # NaN has no place in a NOT NULL column


def test_poisoned_requests_among_600_from_several_clients_lose_no_other_record(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    with ScriptedUpstream(default=Step(content="cut", finish_reason="length")) as cutting:
        gw = gateway_factory(
            f"""
deployments:
  a: {{kind: openai, base_url: "{upstream.base_url}", model: m}}
  b: {{kind: openai, base_url: "{cutting.base_url}", model: m}}
models:
  assistant: {{deployments: [a]}}
  cut: {{deployments: [b], lifecycle: {{on_truncation: retry, backoff: {{base_s: 0.001}}}}}}
"""
        )
        ids: list[str] = []
        statuses: list[int] = []
        lock = threading.Lock()
        poisons: dict[int, dict[str, Any]] = {
            # deeper than the record's serialiser writes
            1: {"model": "assistant", "messages": nested(300)},
            # the truncation retry doubles it past 64 bits
            4: {"model": "cut", "messages": [{"role": "user", "content": "x"}]}
            | {"max_tokens": 2**64 - 1},
        }

        def client(n: int, poison: dict[str, Any] | None) -> None:
            with httpx.Client(base_url=gw.url, timeout=30) as http:
                for i in range(n):
                    body = {"model": "assistant", "messages": [{"role": "user", "content": f"{i}"}]}
                    r = http.post(
                        "/v1/chat/completions", json=poison if poison and i == n // 2 else body
                    )
                    with lock:
                        statuses.append(r.status_code)
                        if "x-turnout-request-id" in r.headers:
                            ids.append(r.headers["x-turnout-request-id"])

        threads = [threading.Thread(target=client, args=(100, poisons.get(i))) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        gw.gateway.writer.flush()
        assert len(statuses) == 600 and statuses.count(200) == 598
        db = sqlite3.connect(str(gw.gateway.writer.path))
        stored = {row[0] for row in db.execute("SELECT id FROM requests")}
        assert len(stored) == 600  # every request has its record, the poisoned ones included
        assert set(ids) <= stored
        assert gw.gateway.writer.dropped == 0
        marked = db.execute(
            "SELECT count(*) FROM requests WHERE request_body LIKE '%unrecordable%'"
        ).fetchone()[0]
        assert marked == 1  # the nested body; a max_tokens past 64 bits is kept as text
        assert gw.chat(model="assistant").status_code == 200
