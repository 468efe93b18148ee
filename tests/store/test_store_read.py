"""The record's read API, on stores written by the real record writer, SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from turnout.cli import main
from turnout.lifecycle.run import Attempt, Run
from turnout.lifecycle.states import State
from turnout.store.errors import NoRecordStore, RecordNotFound, StoreError
from turnout.store.events import MigrationEvent, open_event_log
from turnout.store.page import RequestFilter
from turnout.store.read import ShadowTotal, open_reader
from turnout.store.writer import RecordWriter

T0 = time.time() - 3600  # recent: retention would prune an older record


def served(
    run_id: str,
    at: float,
    *,
    model: str = "assistant",
    deployment: str = "edge",
    outcome: State = State.COMPLETED,
    cost_usd: float = 0.001,
    body: Any = None,
    migration: dict[str, Any] | None = None,
) -> Run:
    """A run that went received → routed → attempting → validating → `outcome`."""
    run = Run(id=run_id, model=model, operation="chat", started=T0 + at)
    run.request_body = (
        body if body is not None else {"messages": [{"role": "user", "content": "hi"}]}
    )
    run.response_body = {"choices": [{"message": {"content": f"answer {run_id}"}}]}
    run.migration = migration or {}
    run.transition(State.ROUTED, deployment=deployment)
    run.attempts.append(
        Attempt(1, deployment, started=run.now(), ok=True, completion_tokens=5, cost_usd=cost_usd)
    )
    run.transition(State.ATTEMPTING, deployment=deployment, attempt=1)
    run.attempts[-1].ended = run.now()
    run.transition(State.VALIDATING)
    run.transition(outcome)
    return run


def record(url: str, runs: list[Run], mode: str = "full") -> str:
    writer = RecordWriter(url, mode, 60, 10_000)
    writer.open()
    for run in runs:
        writer.submit(run)
    writer.flush()
    writer.close()
    assert (writer.written, writer.dropped) == (len(runs), 0)
    return url


def test_requests_are_listed_newest_first_and_filtered_by_outcome_and_model(
    new_store: Callable[[], str],
) -> None:
    url = record(
        new_store(),
        [
            served("r1", 1),
            served("r2", 2, outcome=State.TRUNCATED),
            served("r3", 3, model="other"),
            served("r4", 4),
        ],
    )
    with open_reader(url) as reader:
        assert [r["id"] for r in reader.requests()] == ["r4", "r3", "r2", "r1"]
        assert [r["id"] for r in reader.requests(limit=2)] == ["r4", "r3"]
        assert [r["id"] for r in reader.requests(outcome="truncated")] == ["r2"]
        assert [r["id"] for r in reader.requests(model="assistant", outcome="completed")] == [
            "r4",
            "r1",
        ]
        row = reader.requests(model="other")[0]
    assert row["deployments"] == ["edge"] and row["stream"] is False
    assert row["migration"] is None
    assert "request_body" not in row  # the listing leaves the bodies out


def test_a_request_is_found_by_id_or_unique_prefix_and_an_ambiguous_prefix_is_refused(
    new_store: Callable[[], str],
) -> None:
    runs = [served("abc", 1), served("abc2", 2), served("abdx", 3)]
    url = record(new_store(), runs)
    with open_reader(url) as reader:
        trace = reader.request("abd")  # a unique prefix
        assert reader.request("abc")["id"] == "abc"  # exact, though also a prefix of abc2
        assert reader.request("abc2")["id"] == "abc2"
        with pytest.raises(RecordNotFound, match="ambiguous"):
            reader.request("ab")
        with pytest.raises(RecordNotFound, match="no request with id 'zz'"):
            reader.request("zz")
    assert [e["state"] for e in trace["events"]] == [
        "received",
        "routed",
        "attempting",
        "validating",
        "completed",
    ]
    assert trace["response_body"] == {"choices": [{"message": {"content": "answer abdx"}}]}
    assert trace["attempt_log"][0]["deployment"] == "edge"


def test_recent_attempts_are_the_latest_requests_attempts_oldest_first(
    new_store: Callable[[], str],
) -> None:
    runs = [served(f"r{i}", i, deployment=f"d{i}") for i in range(5)]
    url = record(new_store(), runs)
    with open_reader(url) as reader:
        assert [a["deployment"] for a in reader.recent_attempts(limit=3)] == ["d2", "d3", "d4"]


def test_requests_after_a_cursor_page_through_the_record_in_order(
    new_store: Callable[[], str],
) -> None:
    # r2 and r3 started at the same instant: the id breaks the tie, so no page repeats or skips.
    runs = [served("r1", 1), served("r3", 2), served("r2", 2), served("r4", 3)]
    url = record(new_store(), runs)
    seen: list[str] = []
    cursor = (0.0, "")
    with open_reader(url) as reader:
        while page := reader.requests_after(cursor, limit=3):
            seen += [r["id"] for r in page]
            cursor = (page[-1]["started"], page[-1]["id"])
        assert reader.requests_after(cursor) == []
        (first,) = reader.requests_after((0.0, ""), limit=1)
    assert seen == ["r1", "r2", "r3", "r4"]
    assert first["attempt_log"][0]["completion_tokens"] == 5
    assert first["response_body"]["choices"][0]["message"]["content"] == "answer r1"


def test_replayable_requests_have_bodies_match_the_filters_and_are_not_shadows(
    new_store: Callable[[], str],
) -> None:
    runs = [
        served("old", 1),
        served("p", 10, migration={"shadow": "s"}),
        served("s", 11, deployment="cand", migration={"shadow_of": "p", "candidate": "cand"}),
        served("trunc", 12, outcome=State.TRUNCATED),
        served("bad", 13, outcome=State.INVALID_OUTPUT),
    ]
    url = record(new_store(), runs)
    with open_reader(url) as reader:
        ids = [
            r["id"] for r in reader.replayable(since=T0 + 5, outcomes=("completed", "truncated"))
        ]
        everything = [r["id"] for r in reader.replayable()]
    assert ids == ["p", "trunc"]
    assert everything == ["old", "p", "trunc", "bad"]
    # A store that keeps no bodies has nothing to replay.
    bare = record(new_store(), [served("x", 1)], mode="none")
    with open_reader(bare) as reader:
        assert reader.replayable() == []


def test_shadow_pairs_totals_and_spend_are_read_from_the_migration_column(
    new_store: Callable[[], str],
) -> None:
    shadow = {"candidate": "cand"}
    runs = [
        served("p1", 1, migration={"shadow": "s1"}),
        served("s1", 2, deployment="cand", cost_usd=0.25, migration={"shadow_of": "p1", **shadow}),
        served("p2", 3, migration={"shadow": "s2"}),
        served(
            "s2",
            4,
            deployment="cand",
            cost_usd=0.5,
            outcome=State.INVALID_OUTPUT,
            migration={"shadow_of": "p2", **shadow},
        ),
        # A shadow whose primary never reached the record.
        served("s3", 5, deployment="cand", cost_usd=1.0, migration={"shadow_of": "gone", **shadow}),
        served("q", 6, model="other", deployment="cand", migration={"shadow_of": "p1", **shadow}),
    ]
    url = record(new_store(), runs)
    with open_reader(url) as reader:
        pairs = reader.shadow_pairs("assistant")
        totals = reader.shadow_totals()
        assert reader.shadow_spent("assistant", "cand") == pytest.approx(1.75)
        assert reader.shadow_spent("assistant", "elsewhere") == 0.0
        assert [t.model for t in reader.shadow_totals("other")] == ["other"]
    assert [(p["id"], s["id"]) for p, s in pairs] == [("p2", "s2"), ("p1", "s1")]
    assert pairs[0][1]["migration"]["shadow_of"] == "p2"
    assert totals == [
        ShadowTotal("assistant", "cand", shadows=3, completed=2, spent_usd=pytest.approx(1.75)),
        ShadowTotal("other", "cand", shadows=1, completed=1, spent_usd=pytest.approx(0.001)),
    ]


def test_canary_stage_holds_the_requests_of_one_running_stage_of_one_candidate(
    new_store: Callable[[], str],
) -> None:
    def placed(arm: str, stage: int, status: str = "running", candidate: str = "cand") -> Any:
        canary = {"candidate": candidate, "arm": arm, "stage": stage, "percent": 5.0}
        return {"canary": {**canary, "status": status}}

    runs = [
        served("before", 1, migration=placed("old", 0)),
        served("c1", 10, deployment="cand", migration=placed("candidate", 0)),
        served("o1", 11, migration=placed("old", 0)),
        served("later", 12, migration=placed("old", 1)),
        served("rolled", 13, migration=placed("old", 0, status="rolled_back")),
        served("other", 14, migration=placed("old", 0, candidate="else")),
        served("plain", 15),
    ]
    url = record(new_store(), runs)
    with open_reader(url) as reader:
        rows = reader.canary_stage("assistant", "cand", 0, since=T0 + 5)
    assert [r["migration"]["canary"]["arm"] for r in rows] == ["candidate", "old"]
    assert rows[0]["outcome"] == "completed" and rows[0]["cost_usd"] == pytest.approx(0.001)
    assert rows[0]["attempt_log"][-1]["deployment"] == "cand"
    assert rows[0]["latency_ms"] is not None


def test_migration_events_are_kept_in_order_and_read_back(new_store: Callable[[], str]) -> None:
    url = new_store()
    log = open_event_log(url)
    events = [
        MigrationEvent(T0, "assistant", "canary", "cand", "started", 0, 5.0, {"settings": {}}),
        # Same instant: the order they were written in decides which is latest.
        MigrationEvent(T0 + 1, "assistant", "canary", "cand", "promoted", 1, 25.0, {"n": 3}),
        MigrationEvent(T0 + 1, "assistant", "canary", "cand", "rolled_back", 1, 0.0, {}),
        MigrationEvent(T0 + 2, "other", "shadow", "cand", "budget_spent", None, None, {}),
    ]
    try:
        for e in events:
            log.append(e)
        assert log.latest("assistant", "canary", "cand") == events[2]
        assert log.latest("assistant", "canary", "nobody") is None
    finally:
        log.close()
    with open_reader(url) as reader:
        assert reader.migration_events() == events
        assert reader.migration_events("assistant", limit=2) == events[1:3]


def test_a_store_with_nothing_recorded_yet_reads_as_empty(new_store: Callable[[], str]) -> None:
    url = new_store()
    open_event_log(url).close()  # the file exists, with no requests table
    with open_reader(url) as reader:
        assert reader.requests() == []
        assert reader.recent_attempts() == []
        assert reader.requests_after((0.0, "")) == []
        assert reader.replayable() == []
        assert reader.shadow_pairs() == [] and reader.shadow_totals() == []
        assert reader.shadow_spent("assistant", "cand") == 0.0
        assert reader.canary_stage("assistant", "cand", 0, 0.0) == []
        assert reader.migration_events() == []
        assert reader.page(RequestFilter(model="assistant")) == []
        assert reader.key_spend(0.0, 60.0) == [] and reader.key_refusals(0.0) == []
        with pytest.raises(RecordNotFound):
            reader.request("r1")
        # The same reader sees the first records once the writer has made the table.
        record(url, [served("r1", 1)])
        assert [r["id"] for r in reader.requests()] == ["r1"]


def test_a_missing_store_is_no_record_store_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(NoRecordStore, match=f"no record store at {path}"):
        open_reader(f"sqlite:///{path}")
    assert not path.exists()  # reading never creates a store


def test_a_file_that_is_not_a_store_is_a_store_error_and_the_cli_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database, just text " * 100)
    with pytest.raises(StoreError, match="is not a turnout record store"):
        open_reader(f"sqlite:///{path}")
    assert main(["requests", "--store", f"sqlite:///{path}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err and "Traceback" not in err


def test_an_unsupported_store_url_is_refused_without_quoting_its_credentials() -> None:
    with pytest.raises(StoreError, match="'mysql' are not supported") as caught:
        open_reader("mysql://turnout:s3cret-pw@db.internal/turnout")
    assert "s3cret-pw" not in str(caught.value)


def test_rows_hold_plain_values_only(new_store: Callable[[], str]) -> None:
    """Nothing of the database driver reaches callers, so another database can stand behind."""
    url = record(new_store(), [served("r1", 1, migration={"shadow": "s"})])
    with open_reader(url) as reader:
        rows = [*reader.requests(), reader.request("r1"), *reader.replayable()]
        rows += reader.requests_after((0.0, ""))

    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or type(value) in (str, int, float, bool)

    assert rows and all(type(r) is dict and plain(r) for r in rows)


def test_the_writer_and_a_reader_share_the_store_while_it_is_written(
    new_store: Callable[[], str],
) -> None:
    url = new_store()
    writer = RecordWriter(url, "full", 60, 10_000)
    writer.open()
    try:
        writer.submit(served("r1", 1))
        writer.flush()
        with open_reader(url) as reader:
            assert [r["id"] for r in reader.requests()] == ["r1"]
            writer.submit(served("r2", time.time() - T0))
            writer.flush()
            # One reader, read again: it sees what was committed since it opened.
            assert [r["id"] for r in reader.requests()] == ["r2", "r1"]
    finally:
        writer.close()
