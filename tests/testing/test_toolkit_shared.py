"""Cassettes shared by several tests, and runs split over pytest-xdist workers: nothing is lost.

The xdist runs are real: pytest in a subprocess with `-n 2`, against a real gateway and a
scripted upstream on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from toolkit_helpers import upstream_config
from upstream import ScriptedUpstream, Step

from turnout.testing import Cassette, InProcessGateway, Mode

pytest_plugins = ["pytester"]


@pytest.fixture
def up() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(default=Step(content="an answer")) as u:
        yield u


def record(up: ScriptedUpstream, path: Path, mode: Mode, owner: str, *questions: str) -> None:
    cassette = Cassette.load(path, mode, owner=owner)
    gw = InProcessGateway(upstream_config(up.base_url), cassette=cassette).start()
    with gw.openai() as client:
        for q in questions:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": q}])
    gw.stop()


def asked(path: Path) -> dict[str, str]:
    entries = orjson.loads(path.read_bytes())["entries"]
    return {e["request"]["messages"][0]["content"]: e["recorded_by"] for e in entries}


def test_tests_recording_into_one_cassette_at_once_keep_each_others_entries(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "shared.json"
    a = Cassette.load(path, Mode.ONCE, owner="test_a")
    b = Cassette.load(path, Mode.ONCE, owner="test_b")  # loaded before a saved: sees nothing
    for cassette, q in ((a, "from a"), (b, "from b")):
        gw = InProcessGateway(upstream_config(up.base_url), cassette=cassette).start()
        with gw.openai() as client:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": q}])
        gw.stop()
    assert asked(path) == {"from a": "test_a", "from b": "test_b"}


def test_once_records_a_test_that_has_nothing_in_a_shared_cassette_yet(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "shared.json"
    record(up, path, Mode.ONCE, "test_a", "from a")
    record(up, path, Mode.ONCE, "test_b", "from b")
    record(up, path, Mode.ONCE, "test_b", "from b")  # now replayed
    assert asked(path) == {"from a": "test_a", "from b": "test_b"}
    assert len(up.requests) == 2


def test_mode_all_rewrites_only_the_recording_tests_own_entries(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "shared.json"
    record(up, path, Mode.ONCE, "test_a", "a, old")
    record(up, path, Mode.ONCE, "test_b", "from b")
    record(up, path, Mode.ALL, "test_a", "a, new")
    assert asked(path) == {"from b": "test_b", "a, new": "test_a"}


def test_an_entry_another_test_recorded_is_never_overwritten(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "shared.json"
    up.script(Step(content="a's answer"), Step(content="b's answer"))
    a = Cassette.load(path, Mode.NEW_EPISODES, owner="test_a")
    b = Cassette.load(path, Mode.NEW_EPISODES, owner="test_b")
    for cassette in (a, b):  # both ask the same thing before either saved
        gw = InProcessGateway(upstream_config(up.base_url), cassette=cassette).start()
        with gw.openai() as client:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
        gw.stop()
    [entry] = orjson.loads(path.read_bytes())["entries"]
    assert entry["recorded_by"] == "test_a"
    assert entry["response"]["completion"]["choices"][0]["message"]["content"] == "a's answer"


# -- pytest-xdist ----------------------------------------------------------------------------

SHARED_TESTS = """
import os
import pytest

def ask(gw, q):
    r = gw.openai().chat.completions.create(model="m", messages=[{"role": "user", "content": q}])
    return r.choices[0].message.content

@pytest.mark.parametrize("i", range(8))
@pytest.mark.cassette("shared")
def test_shared(turnout_gateway, i):
    gw = turnout_gateway(os.environ["TOOLKIT_CONFIG"])
    assert ask(gw, f"question {i}") == "an answer"
    assert ask(gw, "asked by every test") == "an answer"
"""


def run_xdist(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", *args)


def test_xdist_workers_sharing_a_cassette_record_every_entry_and_replay_them(
    pytester: pytest.Pytester, up: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLKIT_CONFIG", upstream_config(up.base_url))
    pytester.makepyfile(test_shared=SHARED_TESTS)
    path = pytester.path / "cassettes" / "test_shared" / "shared.json"

    run_xdist(pytester, "--turnout-record-mode=once").assert_outcomes(passed=8)
    recorded = asked(path)
    assert {f"question {i}" for i in range(8)} | {"asked by every test"} == set(recorded)
    assert len({owner for q, owner in recorded.items() if q.startswith("question")}) == 8

    run_xdist(pytester, "--turnout-record-mode=all").assert_outcomes(passed=8)
    assert set(asked(path)) == set(recorded)  # re-recorded, nothing dropped

    up.stop()
    run_xdist(pytester).assert_outcomes(passed=8)  # mode none: every answer is there


TRIALS_TESTS = """
import pytest

@pytest.mark.parametrize("task", ["a", "b", "c", "d"])
@pytest.mark.trials(n=6, threshold=0.1, pass_k=(1, 2))
def test_task(task, turnout_trial):
    assert turnout_trial.index < {"a": 6, "b": 5, "c": 3, "d": 6}[task]

@pytest.mark.trials(sprt=(0.9, 0.5), n=50)
def test_sequential():
    pass
"""


def test_xdist_trials_report_and_table_hold_every_workers_results(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_trials=TRIALS_TESTS)
    result = run_xdist(pytester, "--turnout-report=report.json")
    result.assert_outcomes(passed=5)
    out = result.stdout.str()
    assert "turnout trials" in out and "trials report: report.json" in out
    for case, passes in (("a", 6), ("b", 5), ("c", 3), ("d", 6)):
        assert f"test_trials.py::test_task[{case}]" in out
        assert f"{passes}/6" in out
    assert "test_trials.py::test_task (4 tasks): pass^1=0.833" in out
    report = json.loads((pytester.path / "report.json").read_text())
    names = [t["name"] for t in report["tests"]]
    assert names == sorted(names) and len(names) == 5
    assert report["groups"][0]["tasks"] == 4
