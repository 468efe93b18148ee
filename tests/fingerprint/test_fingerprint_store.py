"""The fingerprint tables: every sample kept as answered, baselines by name, old files upgraded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from turnout.fingerprint.samples import LOGPROB, ProbeRun, Sample
from turnout.fingerprint.store import FingerprintStore, NoSuchBaseline
from turnout.fingerprint.suite import Suite, builtin_suite


def a_run() -> ProbeRun:
    suite = builtin_suite().with_options(probes=2)
    samples = [
        Sample("en-history", " in Mainz", finish_reason="length", prompt_tokens=7,
               completion_tokens=3, latency_s=0.1, model="m", system_fingerprint="fp_1",
               token_logprob=-1.5),
        Sample("en-science", "", error="timeout: upstream timed out"),
        Sample("en-history", " in", kind=LOGPROB, logprobs={" in": -0.2, " with": -1.9}),
    ]  # fmt: skip
    return ProbeRun("fp1", "edge", suite.name, suite.digest(), 1.0, 2.0, suite.sampling.body(),
                    samples, 0.001, "cost budget reached", suite.to_spec())  # fmt: skip


def test_a_run_comes_back_exactly_as_stored(tmp_path: Path) -> None:
    run = a_run()
    with FingerprintStore(tmp_path / "fp.db") as store:
        store.save_run(run)
        back = store.load_run("fp1")
    assert back == run
    assert Suite.from_spec(back.suite_spec or {}).digest() == run.suite_digest


def test_baselines_are_named_runs(tmp_path: Path) -> None:
    with FingerprintStore(f"sqlite:///{tmp_path / 'fp.db'}") as store:
        store.save_run(a_run())
        with pytest.raises(NoSuchBaseline):
            store.baseline("edge")
        store.set_baseline("edge", "fp1", "edge")
        assert store.baseline("edge").id == "fp1"
        assert [b["name"] for b in store.baselines()] == ["edge"]


def test_a_store_from_before_the_newer_columns_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE fingerprint_runs (id TEXT PRIMARY KEY, deployment TEXT NOT NULL, "
            "suite TEXT NOT NULL, suite_digest TEXT NOT NULL, started REAL NOT NULL, ended REAL, "
            "sampling TEXT NOT NULL, cost_usd REAL NOT NULL, samples INTEGER NOT NULL, "
            "note TEXT NOT NULL);"
            "CREATE TABLE fingerprint_samples (run_id TEXT NOT NULL, seq INTEGER NOT NULL, "
            "probe TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL, finish_reason TEXT, "
            "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, latency_s REAL, "
            "model TEXT, system_fingerprint TEXT, logprobs TEXT, error TEXT, "
            "PRIMARY KEY (run_id, seq));"
        )
    with FingerprintStore(path) as store:
        store.save_run(a_run())
        assert store.load_run("fp1").samples[0].token_logprob == -1.5
