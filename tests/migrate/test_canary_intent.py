"""The canary's intent guardrail: a candidate whose answers draw more corrections than the old
deployment's is rolled back, like one that fails more, though every request of it succeeds."""

from __future__ import annotations

from collections.abc import Callable

from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

from turnout.migrate.events import read_events

ANSWER = Step(content="Here is the answer.", delay_s=0.005)


def test_a_candidate_whose_answers_are_corrected_more_is_rolled_back(
    gateway_factory: Callable[[str], RunningGateway],
) -> None:
    with ScriptedUpstream(ANSWER) as old, ScriptedUpstream(ANSWER) as cand:
        gw = gateway_factory(f"""
deployments:
  old: {{kind: openai, base_url: "{old.base_url}", model: m, rtt_probe_s: 0}}
  cand: {{kind: openai, base_url: "{cand.base_url}", model: m, rtt_probe_s: 0}}
models:
  assistant:
    deployments: [old]
    canary: {{deployment: cand, stages: [50, 100], min_requests_per_stage: 400,
              min_stage_s: 0, gate: {{success_margin: 0.1, latency_margin: 3.0,
              miss_margin: 0.05}}}}
""")
        status = ""
        for i in range(400):
            question = f"What is the population of city number {i}?"
            first = [{"role": "user", "content": question}]
            r = gw.chat(model="assistant", messages=first)
            assert r.status_code == 200
            if r.headers["x-turnout-deployment"] == "cand":  # its users say it missed, every time
                fix = [
                    *first,
                    {"role": "assistant", "content": "Here is the answer."},
                    {"role": "user", "content": "That's not what I asked, I meant the region."},
                ]
                assert gw.chat(model="assistant", messages=fix).headers["x-turnout-intent"] == (
                    "correction"
                )
            status = gw.gateway.engine.canaries.status()["assistant"]["status"]  # type: ignore[attr-defined]
            if status != "running":
                break
        assert status == "rolled_back"
        gw.gateway.writer.flush()
        (rollback,) = [
            e for e in read_events(gw.gateway.config.store.url) if e.kind == "rolled_back"
        ]
        failed = [v for v in rollback.detail["gate"]["verdicts"] if v["outcome"] == "fail"]
        assert [v["check"] for v in failed] == ["intent_hit"]
