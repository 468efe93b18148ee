"""Decisions are recorded once, on both stores: an event written twice under one decision
identity is kept once, and the record refuses what a leader records under a term older than
the newest one registered — the fence that holds when a stalled leader wakes up late."""

from __future__ import annotations

import time
from collections.abc import Callable

from turnout.migrate.events import EventLog, read_events
from turnout.store.fingerprints import AlarmRecord, open_fingerprints
from turnout.store.terms import open_term_log


def rollback(log: EventLog, *, decision: str | None = None, term: int | None = None) -> bool:
    return log.append(
        "assistant", "canary", "cand", "rolled_back", stage=0, percent=0.0,
        detail={"why": "FAIL: success"}, decision=decision, term=term,
    )  # fmt: skip


def test_a_decision_written_twice_is_kept_once_and_plain_events_are_all_kept(
    new_store: Callable[[], str],
) -> None:
    url = new_store()
    log = EventLog(url)
    log.open()
    try:
        assert rollback(log, decision="canary:assistant:cand:2:1.5")
        assert not rollback(log, decision="canary:assistant:cand:2:1.5")  # a late second write
        assert rollback(log, decision="canary:assistant:cand:3:2.5")  # another decision
        assert rollback(log) and rollback(log)  # no identity: nothing to fold
    finally:
        log.close()
    assert [e.kind for e in read_events(url, limit=100)] == ["rolled_back"] * 4


def test_the_record_refuses_a_decision_of_a_term_older_than_the_newest_registered(
    new_store: Callable[[], str],
) -> None:
    url = new_store()
    terms, log, fingerprints = open_term_log(url), EventLog(url), open_fingerprints(url)
    log.open()
    try:
        assert terms.register(3, "replica-a") == 3
        assert rollback(log, decision="d1", term=3)
        assert terms.register(5, "replica-b") == 5  # a successor's term
        assert terms.register(4, "replica-c") == 5  # a term never goes back
        # The leader of term 3, stalled past its lease, wakes and records: refused.
        assert not rollback(log, decision="d2", term=3)
        assert rollback(log, decision="d3", term=5)
        assert rollback(log, decision="d4")  # a lone gateway names no term
        alarm = AlarmRecord("alm1", time.time(), "dep", "raised", "ALARM", {"check": "c1"})
        assert not fingerprints.save_alarm(alarm, term=3)
        assert fingerprints.save_alarm(alarm, term=5)
    finally:
        terms.close()
        log.close()
        fingerprints.close()
    events = read_events(url, limit=100)
    assert len(events) == 3
    check = open_fingerprints(url)
    try:
        assert [a.id for a in check.alarms()] == ["alm1"]
    finally:
        check.close()
