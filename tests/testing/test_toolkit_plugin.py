"""The pytest plugin, tested with pytest's own pytester: real inner test runs, real gateways."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from toolkit_helpers import upstream_config
from upstream import ScriptedUpstream, Step

pytest_plugins = ["pytester"]

AGENT_TEST = """
import json, os, pathlib

def test_agent(turnout_gateway):
    gw = turnout_gateway(os.environ["TOOLKIT_CONFIG"])
    client = gw.openai()
    out = []
    for q in ("one", "two"):
        prompt = os.environ.get("TOOLKIT_PREFIX", "") + q
        r = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": prompt}])
        out.append(r.choices[0].message.content)
    pathlib.Path(os.environ["TOOLKIT_RESULT"]).write_text(json.dumps(out))
"""

STREAM_TEST = """
import os, pathlib, httpx

def test_stream(turnout_gateway):
    gw = turnout_gateway(os.environ["TOOLKIT_CONFIG"])
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "count"}]}
    with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body) as r:
        raw = b"".join(r.iter_raw())
    pathlib.Path(os.environ["TOOLKIT_RESULT"]).write_bytes(raw)
"""


@pytest.fixture
def up() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as u:
        yield u


@pytest.fixture
def env(up: ScriptedUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    result = tmp_path / "result"
    monkeypatch.setenv("TOOLKIT_CONFIG", upstream_config(up.base_url))
    monkeypatch.setenv("TOOLKIT_RESULT", str(result))
    return result


def test_record_then_replay_gives_identical_results(
    pytester: pytest.Pytester, up: ScriptedUpstream, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_agent=AGENT_TEST)
    up.script(Step(content=f"alpha {uuid.uuid4()}"), Step(content=f"beta {uuid.uuid4()}"))
    pytester.runpytest("--turnout-record-mode=once").assert_outcomes(passed=1)
    recorded = json.loads(env.read_text())
    assert (pytester.path / "cassettes" / "test_agent" / "test_agent.json").is_file()

    up.stop()  # the CI default, `none`, never needs the model
    env.unlink()
    pytester.runpytest().assert_outcomes(passed=1)
    assert json.loads(env.read_text()) == recorded and recorded[0].startswith("alpha")


def test_a_changed_prompt_in_none_mode_fails_with_a_helpful_diff(
    pytester: pytest.Pytester, up: ScriptedUpstream, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_agent=AGENT_TEST)
    pytester.runpytest("--turnout-record-mode=once").assert_outcomes(passed=1)
    monkeypatch.setenv("TOOLKIT_PREFIX", "please answer: ")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1, errors=1)  # the call fails; teardown reports the miss
    text = result.stdout.str()
    assert "has no answer for this request" in text
    assert "differs from the nearest recorded request at: messages[0].content" in text
    assert '-      "content": "one"' in text and '+      "content": "please answer: one"' in text


def test_streaming_replay_is_byte_identical(
    pytester: pytest.Pytester, up: ScriptedUpstream, env: Path
) -> None:
    pytester.makepyfile(test_stream=STREAM_TEST)
    up.script(Step(content=" ".join(str(uuid.uuid4())[:6] for _ in range(8))))
    pytester.runpytest("--turnout-record-mode=once").assert_outcomes(passed=1)
    live = env.read_bytes()
    up.stop()
    pytester.runpytest().assert_outcomes(passed=1)
    assert env.read_bytes() == live and live.count(b"data: ") >= 10


TRIALS_TEST = """
import itertools, os
import pytest

flip = itertools.count()

@pytest.mark.trials(n=20, threshold=0.5)
def test_always():
    pass

@pytest.mark.trials(n=20, threshold=0.9)
def test_half():
    assert next(flip) % 2 == 0, "odd trial"

@pytest.mark.trials(n=10, threshold=0.8)
def test_nine_of_ten(turnout_trial):
    assert turnout_trial.index != 3

@pytest.mark.trials(sprt=(0.9, 0.7), n=100)
def test_sequential():
    pass

@pytest.mark.trials(n=20, threshold=0.3)
def test_rate_from_env(turnout_trial):
    assert turnout_trial.index < int(os.environ.get("TOOLKIT_PASSES", "20"))
"""


def test_trials_report_verdicts_intervals_and_sprt_stops_early(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_trials=TRIALS_TEST)
    result = pytester.runpytest("--turnout-report=report.json")
    result.assert_outcomes(passed=3, failed=2)
    out = result.stdout.str()
    assert "turnout trials" in out
    assert "FAIL: 10/20 passed (rate 0.50, 95% Wilson interval [0.30, 0.70]); threshold 0.9" in out
    assert "trial 2: AssertionError: odd trial" in out
    assert "INCONCLUSIVE: 9/10 passed" in out
    report = json.loads((pytester.path / "report.json").read_text())
    tests = {t["name"].split("::")[1]: t for t in report["tests"]}
    assert tests["test_sequential"]["n"] == 12 and tests["test_sequential"]["verdict"] == "PASS"
    assert tests["test_always"]["interval"][0] == pytest.approx(0.8389, abs=1e-4)
    assert tests["test_nine_of_ten"]["outcomes"][3] is False

    pytester.runpytest("--turnout-inconclusive=pass", "-k", "nine").assert_outcomes(passed=1)


def test_a_baseline_comparison_flags_a_regression_not_noise(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_trials=TRIALS_TEST)
    pytester.runpytest("-k", "env", "--turnout-report=base.json").assert_outcomes(passed=1)
    monkeypatch.setenv("TOOLKIT_PASSES", "18")  # 18/20 vs 20/20: noise at this n
    noise = pytester.runpytest("-k", "env", "--turnout-baseline=base.json")
    noise.assert_outcomes(passed=1)
    assert "no significant change" in noise.stdout.str()
    monkeypatch.setenv("TOOLKIT_PASSES", "10")  # 10/20 passes the 0.3 threshold, but regressed
    regressed = pytester.runpytest("-k", "env", "--turnout-baseline=base.json")
    regressed.assert_outcomes(failed=1)
    assert "vs baseline 20/20: -0.50" in regressed.stdout.str()


def test_faults_marker_reaches_the_gateway_and_the_tools(
    pytester: pytest.Pytester, up: ScriptedUpstream, env: Path
) -> None:
    pytester.makepyfile(
        test_faulty="""
import os
import pytest
from turnout.testing import faults

@pytest.mark.faults(faults.rate_limited(at=1), "tool_error@tool=lookup,call=2")
def test_survives(turnout_gateway, turnout_faults):
    gw = turnout_gateway(os.environ["TOOLKIT_CONFIG"], cassette=False)
    raw = gw.openai().chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-turnout-attempts"] == "2"
    lookup = turnout_faults.wrap_tools({"lookup": lambda order_id: {"ok": True}})["lookup"]
    assert lookup("A1") == {"ok": True}
    assert lookup("A2")["isError"] is True
    assert [i.fault for i in turnout_faults.injected] == [
        "rate_limited@call=1", "tool_error@tool=lookup,call=2"]
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_trials_are_never_served_from_a_cassette(pytester: pytest.Pytester, env: Path) -> None:
    pytester.makepyfile(
        test_cached="""
import os
import pytest

@pytest.mark.trials(n=3, threshold=0.1)
def test_cached(turnout_gateway):
    turnout_gateway(os.environ["TOOLKIT_CONFIG"], cassette=True)
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    assert "never served from a cassette" in result.stdout.str()


def test_pass_hat_k_across_the_parametrized_tasks_of_a_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_tasks="""
import pytest

PASSES = {"a": 4, "b": 2, "c": 0}  # of 4 trials: pass^2 = (1 + 1/6 + 0) / 3

@pytest.mark.parametrize("task", sorted(PASSES))
@pytest.mark.trials(n=4, threshold=0.0, pass_k=(1, 2))
def test_task(task, turnout_trial):
    assert turnout_trial.index < PASSES[task]
"""
    )
    result = pytester.runpytest("--turnout-report=r.json")
    result.assert_outcomes(passed=3)
    [group] = json.loads((pytester.path / "r.json").read_text())["groups"]
    assert group["tasks"] == 3
    assert group["pass_k"] == {"1": pytest.approx(0.5), "2": pytest.approx(7 / 18)}
    assert "test_tasks.py::test_task (3 tasks): pass^1=0.500 pass^2=0.389" in result.stdout.str()
