"""`turnout store copy` moves a whole record between SQLite and PostgreSQL, either way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pg_server import PASSWORD, PostgresServer
from test_store_read import T0, record, served

from turnout.cli import main
from turnout.lifecycle.states import State
from turnout.store.errors import StoreError
from turnout.store.events import MigrationEvent, open_event_log
from turnout.store.feedback import Feedback, open_feedback_log
from turnout.store.fingerprints import AlarmRecord, CheckRecord, open_fingerprints
from turnout.store.keys import KeyEvent, KeyRecord, SpendDelta, open_keys
from turnout.store.read import open_reader


def filled(url: str) -> str:
    """A record with something in every table."""
    runs = [served(f"r{i:03d}", i * 3000.0, cost_usd=0.01 * i) for i in range(40)]
    runs.append(
        served("s1", 5, deployment="cand", migration={"shadow_of": "r001", "candidate": "c"})
    )
    runs.append(served("odd", 7, outcome=State.TRUNCATED, body={"messages": [], "x": "a\x00b"}))
    record(url, runs)
    log = open_event_log(url)
    log.append(MigrationEvent(T0, "assistant", "canary", "c", "started", 0, 5.0, {"n": 1}))
    log.append(MigrationEvent(T0, "assistant", "canary", "c", "promoted", 1, 25.0, {}))
    log.close()
    feedback = open_feedback_log(url)
    feedback.append(Feedback("f1", T0, "r001", None, 1.0, "good", "nice", None))
    feedback.close()
    keys = open_keys(url)
    keys.add(KeyRecord("k1", "team", "ab" * 32, "tk-…ab12", T0, models=("assistant",)))
    keys.add(KeyRecord("k2", "other", "cd" * 32, "tk-…cd34", T0 + 1, metadata={"a": "b"}))
    keys.revoke("k2", T0 + 2)
    keys.add_spend([SpendDelta("k1", 0.0, 0.5, 100, 3)])
    keys.append_events([KeyEvent(T0, "k1", "created", {"by": "test"})])
    keys.close()
    prints = open_fingerprints(url)
    prints.save_run(
        {"id": "run1", "deployment": "edge", "suite": "s", "suite_digest": "d", "started": T0,
         "ended": T0 + 1, "sampling": {"t": 0}, "cost_usd": 0.1, "note": "", "suite_spec": None},
        [{"probe": "p", "kind": "k", "text": "t", "finish_reason": "stop", "prompt_tokens": 1,
          "completion_tokens": 2, "latency_s": 0.5, "model": "m", "system_fingerprint": None,
          "logprobs": [0.1], "token_logprob": -0.1, "error": None}],
    )  # fmt: skip
    prints.set_baseline("base", "run1", "edge", T0)
    prints.save_check(CheckRecord("c1", T0, "edge", "base", "run1", True, 0.01, {"v": 1}))
    prints.save_alarm(AlarmRecord("a1", T0, "edge", "raised", "changed", {"p": 0.01}))
    prints.close()
    return url


def everything(url: str) -> dict[str, Any]:
    """What every reader of the record sees."""
    with open_reader(url) as reader:
        ids = [r["id"] for r in reader.requests(limit=1000)]
        seen: dict[str, Any] = {
            "requests": [reader.request(i) for i in sorted(ids)],
            "events": reader.migration_events(),
            "feedback": reader.feedback(),
            "pairs": reader.shadow_pairs(),
        }
    keys = open_keys(url)
    seen["keys"] = [(k.public(), k.secret_sha256) for k in keys.all()]
    seen["spend"] = keys.spend("k1", 0.0)
    seen["key_events"] = keys.events("k1")
    keys.close()
    prints = open_fingerprints(url)
    seen["run"] = prints.load_run("run1")
    seen["fingerprints"] = (prints.baselines(), prints.checks(), prints.alarms())
    prints.close()
    return seen


def without_nul(value: Any) -> Any:
    """PostgreSQL text holds no NUL: a copy there replaces it, as its writer does."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {k: without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(without_nul(v) for v in value)
    return value


def test_a_record_goes_from_sqlite_to_postgres_and_back_unchanged(
    tmp_path: Path, pg_server: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    source = filled(f"sqlite:///{tmp_path / 'a.db'}")
    pg = pg_server.create_database()
    assert main(["store", "copy", source, pg]) == 0
    out, err = capsys.readouterr()
    assert "requests: 42/42 rows" in err and "fingerprint_alarms: 1/1 rows" in err
    assert out.startswith("copied ") and PASSWORD not in out + err
    back = f"sqlite:///{tmp_path / 'b.db'}"
    assert main(["store", "copy", pg, back]) == 0
    original = everything(source)
    assert original["requests"][0]["attempt_log"][0]["deployment"] == "edge"
    assert everything(pg) == everything(back)
    # The body held a NUL (a JSON escape): kept as it was, on both sides.
    assert everything(pg) == original
    # Key revisions continue after the copied ones: a new change is the newest.
    keys = open_keys(pg)
    try:
        newest = max(k.revision for k in keys.all())
        assert keys.revoke("k1", T0 + 9).revision > newest
    finally:
        keys.close()


def test_a_copy_into_a_store_that_holds_records_is_refused(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    source = filled(f"sqlite:///{tmp_path / 'a.db'}")
    pg = pg_server.create_database()
    record(pg, [served("there", 1)])
    with pytest.raises(StoreError, match="already holds 1 rows in requests"):
        from turnout.store.copy import copy_record

        copy_record(source, pg)
