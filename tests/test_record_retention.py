"""`store.retention`: the oldest records go by age and by size, in the background, and the
file shrinks; its keys are checked like the rest of the config."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream

from turnout.config import ConfigError, Retention, parse_config
from turnout.lifecycle.run import Run
from turnout.lifecycle.states import State
from turnout.store.retention import used_bytes
from turnout.store.writer import RecordWriter

Factory = Callable[[str], RunningGateway]
DAY = 86400.0


def run_at(run_id: str, started: float, body_chars: int = 100) -> Run:
    run = Run(
        id=run_id,
        model="assistant",
        operation="chat",
        started=started,
        request_body={"messages": [{"role": "user", "content": "x" * body_chars}]},
    )
    run.transition(State.REJECTED, status=400)
    return run


def writer(tmp_path: Path, retention: Retention) -> RecordWriter:
    w = RecordWriter(f"sqlite:///{tmp_path / 'r.db'}", "full", 3600, 100_000, retention)
    w.open()
    return w


def ids(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    return [r[0] for r in db.execute("SELECT id FROM requests ORDER BY started")]


def test_defaults_are_thirty_days_and_one_gibibyte() -> None:
    r = parse_config("").store.retention
    assert (r.max_age_days, r.max_bytes, r.check_s) == (30.0, 2**30, 60.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("512MiB", 512 * 2**20), ("2GB", 2 * 10**9), ("1.5 GiB", int(1.5 * 2**30)), (0, 0)],
)
def test_max_bytes_takes_a_count_or_a_size_with_a_unit(value: object, expected: int) -> None:
    cfg = parse_config(f"store: {{retention: {{max_bytes: {value}}}}}")
    assert cfg.store.retention.max_bytes == expected


@pytest.mark.parametrize(
    ("yaml", "where", "what"),
    [
        ("{max_bytes: lots}", "store.retention.max_bytes", "expected a size such as"),
        ("{max_bytes: 1000}", "store.retention.max_bytes", "at least 65536 bytes"),
        ("{max_bytes: -1}", "store.retention.max_bytes", "must be ≥ 0"),
        ("{max_bytes: 5PB}", "store.retention.max_bytes", "expected a size such as"),
        ("{max_age_days: -1}", "store.retention.max_age_days", "must be ≥ 0"),
        ("{max_age_days: soon}", "store.retention.max_age_days", "expected a number"),
        ("{check_s: 0}", "store.retention.check_s", "must be ≥ 0.01"),
        ("{max_age: 30}", "store.retention.max_age", "unknown key"),
        ("7", "store.retention", "expected a mapping"),
    ],
)
def test_retention_errors_name_the_key(yaml: str, where: str, what: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f"store: {{retention: {yaml}}}", "t.yaml")
    assert err.value.path == where
    assert what in err.value.message


def test_records_older_than_max_age_are_deleted_and_younger_ones_kept(tmp_path: Path) -> None:
    now = time.time()
    w = writer(tmp_path, Retention(max_age_days=30, max_bytes=0))
    for i, age_days in enumerate([400, 45, 31, 29, 1, 0]):
        w.submit(run_at(f"r{i}", now - age_days * DAY))
    w.flush()
    assert w.enforce_retention() is False  # all done in one slice
    assert ids(w.path) == ["r3", "r4", "r5"]
    assert w.pruned == 3
    w.close()


def test_max_bytes_deletes_the_oldest_until_the_store_fits_and_the_file_shrinks(
    tmp_path: Path,
) -> None:
    limit = 1024 * 1024
    w = writer(tmp_path, Retention(max_age_days=0, max_bytes=limit))
    now = time.time()
    for i in range(800):  # ~8 MiB of bodies
        w.submit(run_at(f"r{i:04d}", now - (800 - i), body_chars=10_000))
    w.flush()
    assert w._conn is not None
    before = used_bytes(w._conn)
    assert before > 5 * limit
    while w.enforce_retention():
        pass
    kept = ids(w.path)
    assert used_bytes(w._conn) <= limit
    assert kept == [f"r{i:04d}" for i in range(800 - len(kept), 800)]  # the newest survive
    assert 50 < len(kept) < 100
    w.close()
    assert w.path.stat().st_size <= 1.2 * limit  # incremental vacuum gave the pages back


def test_a_gateway_enforces_retention_in_the_background(
    upstream: ScriptedUpstream, gateway_factory: Factory, tmp_path: Path
) -> None:
    db = tmp_path / "bg.db"
    gw = gateway_factory(
        f"""
store: {{url: "sqlite:///{db}", flush_interval_s: 0.02,
         retention: {{max_bytes: 256KiB, check_s: 0.05}}}}
deployments:
  a: {{kind: openai, base_url: "{upstream.base_url}", model: m}}
models:
  assistant: {{deployments: [a]}}
"""
    )
    sent = []
    for i in range(120):  # ~1.2 MiB of prompts
        r = gw.chat(
            model="assistant", messages=[{"role": "user", "content": f"{i} " + "x" * 10_000}]
        )
        assert r.status_code == 200
        sent.append(r.headers["x-turnout-request-id"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kept = set(ids(db))
        if sent[-1] in kept and sent[0] not in kept and len(kept) < 40:
            break
        time.sleep(0.05)
    kept = set(ids(db))
    assert sent[-1] in kept and sent[0] not in kept
    assert len(kept) < 40
    assert gw.gateway.writer.pruned >= 80
    assert gw.http.get("/readyz").status_code == 200
