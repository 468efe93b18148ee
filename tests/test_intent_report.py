"""`turnout intent report` reads the record: misses counted against the answer that caused them,
per group, with intervals, feedback beside them."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

from turnout.cli import main
from turnout.intent.report import wilson

ASKED = "How do I sort a list in Python?"
ANSWER = "Use sorted(my_list)."


def test_the_report_counts_each_miss_against_the_deployment_of_the_missed_answer(
    gateway_factory: Callable[[str], RunningGateway], capsys: pytest.CaptureFixture[str]
) -> None:
    with ScriptedUpstream(Step(content=ANSWER)) as a, ScriptedUpstream(Step(content=ANSWER)) as b:
        gw = gateway_factory(f"""
deployments:
  a: {{kind: openai, base_url: "{a.base_url}", model: m, rtt_probe_s: 0}}
  b: {{kind: openai, base_url: "{b.base_url}", model: m, rtt_probe_s: 0}}
models:
  via-a: {{deployments: [a]}}
  via-b: {{deployments: [b]}}
""")
        for i in range(3):  # three conversations answered by b, one of them corrected on a
            gw.chat(model="via-b", messages=[{"role": "user", "content": f"{ASKED} ({i})"}])
        fix = gw.chat(model="via-a", messages=[
            {"role": "user", "content": f"{ASKED} (0)"}, {"role": "assistant", "content": ANSWER},
            {"role": "user", "content": "No, I meant in reverse order."}])  # fmt: skip
        assert fix.headers["x-turnout-intent"] == "correction"
        missed_id = gw.record(fix.headers["x-turnout-request-id"])["attrs"]["intent"]["missed"]
        r = gw.post("/v1/feedback", {"request_id": missed_id["request_id"], "score": -1})
        assert r.status_code == 200
        gw.gateway.writer.flush()
        url = gw.gateway.config.store.url
        assert main(["intent", "report", "--store", url, "--by", "deployment", "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    groups = {g["group"]: g for g in report["groups"]}
    assert groups["b"]["answers"] == 3 and groups["b"]["missed"] == 1
    assert groups["b"]["signals"] == {"correction": 1}
    assert groups["b"]["negative_feedback"] == 1
    assert groups["b"]["interval_95"] == pytest.approx(list(wilson(1, 3)))
    assert groups["a"]["answers"] == 1 and groups["a"]["missed"] == 0
    assert groups["b"]["examples"][0]["user_said"] == "No, I meant in reverse order."


def test_wilson_interval_holds_the_rate_and_narrows_with_more_answers() -> None:
    lo, hi = wilson(10, 100)
    assert lo < 0.1 < hi
    lo2, hi2 = wilson(100, 1000)
    assert hi2 - lo2 < hi - lo


def test_a_bad_since_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["intent", "report", "--store", "sqlite:///nowhere.db", "--since", "soon"]) == 2
    assert "--since" in capsys.readouterr().err
