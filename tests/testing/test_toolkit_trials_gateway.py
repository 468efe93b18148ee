"""A trials test that starts its gateway inside the trial gets one gateway, not one per trial:
memory stays flat across 20 trials on the embedded SmolLM2 model."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

TWENTY_TRIALS = """
import json, os, pathlib

def rss_mib():
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

import pytest

@pytest.mark.trials(n=20, threshold=0.5)
def test_agent(turnout_gateway, turnout_trial):
    gw = turnout_gateway()  # the embedded default: SmolLM2 in this process
    with gw.openai() as client:
        client.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "Say hi"}], max_tokens=2)
    with open(os.environ["TOOLKIT_RESULT"], "a") as out:
        out.write(json.dumps({"trial": turnout_trial.index, "gateway": id(gw),
                              "port": gw.port, "rss_mib": rss_mib()}) + "\\n")
"""


def test_twenty_trials_reuse_one_gateway_and_memory_stays_flat(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result_file = pytester.path / "trials.jsonl"
    monkeypatch.setenv("TOOLKIT_RESULT", str(result_file))
    pytester.makepyfile(test_memory=TWENTY_TRIALS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    rows = [json.loads(line) for line in result_file.read_text().splitlines()]
    assert [r["trial"] for r in rows] == list(range(20))
    assert len({(r["gateway"], r["port"]) for r in rows}) == 1
    # Measured from the end of the first trial (the model is loaded by then).
    growth = max(r["rss_mib"] for r in rows) - rows[0]["rss_mib"]
    assert growth < 50, f"RSS grew {growth:.0f} MiB over 20 trials: {rows}"


NEW_ARGUMENTS_EACH_TRIAL = """
import os
import httpx
import pytest
from turnout.testing import FaultPlan

urls = []

def alive(url):
    try:
        return httpx.get(url + "/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False

@pytest.mark.trials(n=5, threshold=0.5)
def test_agent(turnout_gateway):
    # A new FaultPlan each trial: new arguments, so a new gateway each trial.
    gw = turnout_gateway(os.environ["TOOLKIT_CONFIG"], faults=FaultPlan())
    urls.append(gw.url)
    # The previous trial's gateway is stopped once this trial has not asked for it again.
    expected = [False] * (len(urls) - 2) + [True] * min(len(urls), 2)
    assert [alive(u) for u in urls] == expected
"""


def test_a_gateway_a_trial_did_not_ask_for_again_is_stopped_after_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit_helpers import upstream_config
    from upstream import ScriptedUpstream

    with ScriptedUpstream() as up:
        monkeypatch.setenv("TOOLKIT_CONFIG", upstream_config(up.base_url))
        pytester.makepyfile(test_fresh=NEW_ARGUMENTS_EACH_TRIAL)
        result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "5/5" in result.stdout.str()
