"""Keys and spend, fingerprint history, feedback: the same answers from both stores."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from turnout.store.errors import RecordNotFound, StoreError
from turnout.store.feedback import Feedback, open_feedback_log
from turnout.store.fingerprints import AlarmRecord, CheckRecord, open_fingerprints
from turnout.store.keys import KeyEvent, KeyRecord, SpendDelta, open_keys
from turnout.store.read import open_reader

T0 = time.time() - 600


def key(key_id: str, created: float, secret: str = "", **kw: object) -> KeyRecord:
    sha = secret or key_id * 32
    return KeyRecord(key_id, f"name-{key_id}", sha, f"tk-…{key_id}", created, **kw)  # type: ignore[arg-type]


def test_keys_changes_spend_and_events_are_kept_and_read_back(
    new_store: Callable[[], str],
) -> None:
    keys = open_keys(new_store())
    try:
        a = keys.add(key("aa", T0, models=("assistant",), rpm=5, metadata={"team": "x"}))
        b = keys.add(key("bb", T0 + 1, budget_usd=2.5, budget_period_s=86400.0))
        assert (a.models, a.rpm, a.metadata) == (("assistant",), 5, {"team": "x"})
        assert [k.id for k in keys.all()] == ["aa", "bb"]
        assert b.revision > a.revision
        revoked = keys.revoke("aa", T0 + 5)
        assert keys.revoke("aa", T0 + 9).revoked == T0 + 5  # the first revocation stands
        rotated = keys.rotate("bb", "ee" * 32, "tk-…ee")
        assert [k.id for k in keys.changed_since(b.revision)] == ["aa", "bb"]
        assert rotated.revision > revoked.revision
        with pytest.raises(RecordNotFound):
            keys.get("zz")
        with pytest.raises(RecordNotFound):
            keys.revoke("zz", T0)
        with pytest.raises(StoreError):  # the secret's hash is unique
            keys.add(key("cc", T0, secret="ee" * 32))
        keys.add_spend([SpendDelta("aa", 0.0, 0.25, 10, 1), SpendDelta("bb", 0.0, 1.0, 5, 1)])
        keys.add_spend([SpendDelta("aa", 0.0, 0.5, 20, 2)])
        assert keys.spend("aa", 0.0) == SpendDelta("aa", 0.0, 0.75, 30, 3)
        assert keys.spend("aa", 86400.0) == SpendDelta("aa", 86400.0, 0.0, 0, 0)
        events = [KeyEvent(T0, "aa", "created", {"by": "cli"}), KeyEvent(T0, "aa", "revoked")]
        keys.append_events(events)
        assert keys.events("aa") == events  # same instant: the order they were written in
        assert keys.events("aa", since=T0 + 1) == []
    finally:
        keys.close()


def test_fingerprint_runs_baselines_checks_and_alarms_are_kept_and_read_back(
    new_store: Callable[[], str],
) -> None:
    prints = open_fingerprints(new_store())

    def run(run_id: str, deployment: str, started: float) -> dict[str, object]:
        return {"id": run_id, "deployment": deployment, "suite": "s", "suite_digest": "d",
                "started": started, "ended": started + 1, "sampling": {"temperature": 0},
                "cost_usd": 0.5, "note": "n", "suite_spec": {"probes": 2}}  # fmt: skip

    sample = {"probe": "p", "kind": "k", "text": "t", "finish_reason": "stop",
              "prompt_tokens": 1, "completion_tokens": 2, "latency_s": 0.5, "model": "m",
              "system_fingerprint": "fp", "logprobs": [[-0.1, "a"]], "token_logprob": -0.1,
              "error": None}  # fmt: skip
    try:
        prints.save_run(run("r1", "edge", T0), [sample, {**sample, "probe": "q"}])
        prints.save_run(run("r2", "edge", T0 + 10), [sample])
        prints.save_run(run("r3", "cloud", T0 + 5), [])
        prints.save_run(run("r1", "edge", T0), [sample])  # saved again: replaces
        loaded = prints.load_run("r1")
        assert loaded is not None
        head, samples = loaded
        assert head["sampling"] == {"temperature": 0} and head["suite_spec"] == {"probes": 2}
        assert samples == [sample]
        assert prints.load_run("nope") is None
        assert [r["id"] for r in prints.runs()] == ["r2", "r3", "r1"]
        assert [r["id"] for r in prints.runs("edge", limit=1)] == ["r2"]
        assert prints.latest_run("edge") == "r2" and prints.latest_run("none") is None
        assert prints.deployments() == ["cloud", "edge"]
        prints.set_baseline("base", "r1", "edge", T0)
        prints.set_baseline("base", "r2", "edge", T0 + 1)
        assert prints.baseline_run_id("base") == "r2"
        assert prints.baselines() == [
            {"name": "base", "run_id": "r2", "deployment": "edge", "created": T0 + 1}
        ]
        checks = [CheckRecord(f"c{i}", T0 + i, "edge", "base", "r2", i == 1, 0.5, {"i": i})
                  for i in range(3)]  # fmt: skip
        for c in checks:
            prints.save_check(c)
        assert prints.checks() == checks
        assert prints.checks("edge", limit=2) == checks[1:]
        alarm = AlarmRecord("a1", T0, "edge", "raised", "drift", {"p": 0.01})
        prints.save_alarm(alarm)
        assert prints.alarms() == [alarm] and prints.alarms("cloud") == []
    finally:
        prints.close()


def test_feedback_is_kept_and_read_back_oldest_first(new_store: Callable[[], str]) -> None:
    url = new_store()
    log = open_feedback_log(url)
    items = [
        Feedback("f2", T0 + 2, "r1", None, -1.0, "bad", "wrong", "k1"),
        Feedback("f1", T0 + 1, None, "conv", 0.5, None, None, None),
    ]
    try:
        for item in items:
            log.append(item)
        with pytest.raises(StoreError):
            log.append(items[0])  # one id, once
    finally:
        log.close()
    with open_reader(url) as reader:
        assert reader.feedback() == items[::-1]
        assert reader.feedback(since=T0 + 2) == [items[0]]
