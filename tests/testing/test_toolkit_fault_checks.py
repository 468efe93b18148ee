"""A fault that never fires fails its test; positions count per agent when several run at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from toolkit_helpers import upstream_config
from upstream import ScriptedUpstream, Step

from turnout.testing import FaultPlan, InProcessGateway, faults, parse_fault

pytest_plugins = ["pytester"]


@pytest.fixture
def up() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(default=Step(content="fine")) as u:
        yield u


def test_optional_reads_and_prints_like_the_other_options() -> None:
    assert str(faults.rate_limited(at=20, optional=True)) == "rate_limited@call=20,optional"
    assert parse_fault("rate_limited@call=20,optional").optional is True
    assert parse_fault("tool_error@tool=x,call=1,optional=false").optional is False


def test_unfired_faults_say_why_they_did_not_fire() -> None:
    plan = FaultPlan([
        faults.rate_limited(at=20),
        faults.tool_error("lokup", 1),
        faults.tool_exception("lookup", 3),
        faults.timeout(at=30, optional=True),
    ])  # fmt: skip
    for i in range(5):
        plan.model_call(f"r{i}")
    tools = plan.wrap_tools({"lookup": lambda: "ok", "weather": lambda: "sun"})
    tools["lookup"]()
    tools["weather"]()
    assert plan.unfired() == [
        "fault rate_limited@call=20 never fired: the run made 5 model calls; a fault that does "
        "not happen tests nothing (mark it optional=True if it need not fire)",
        "fault tool_error@tool=lokup,call=1 never fired: no tool is named 'lokup' (the wrapped "
        "tools: lookup, weather); a fault that does not happen tests nothing (mark it "
        "optional=True if it need not fire)",
        "fault tool_exception@tool=lookup,call=3 never fired: the run's tool calls: lookup×1, "
        "weather×1; a fault that does not happen tests nothing (mark it optional=True if it "
        "need not fire)",
    ]
    with pytest.raises(AssertionError, match="rate_limited@call=20 never fired"):
        plan.assert_fired()


NEVER_FIRED = """
import os
import pytest
from turnout.testing import faults

def ask(gw, n):
    client = gw.openai()
    for _ in range(n):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])

@pytest.mark.faults(faults.rate_limited(at=20))
def test_late_fault(turnout_gateway):
    ask(turnout_gateway(os.environ["TOOLKIT_CONFIG"], cassette=False), 5)

@pytest.mark.faults(faults.rate_limited(at=20, optional=True), faults.rate_limited(at=2))
def test_optional_late_fault(turnout_gateway):
    ask(turnout_gateway(os.environ["TOOLKIT_CONFIG"], cassette=False), 5)

@pytest.mark.faults(faults.tool_error("no_such_tool", 1))
def test_unknown_tool(turnout_faults):
    turnout_faults.wrap_tools({"lookup": lambda: 1})["lookup"]()

@pytest.mark.faults(faults.rate_limited(at=3))
@pytest.mark.trials(n=4, threshold=0.01)
def test_trials_fault_fires_in_some_trials(turnout_gateway, turnout_trial):
    ask(turnout_gateway(os.environ["TOOLKIT_CONFIG"], cassette=False), 2 + turnout_trial.index % 2)
"""


def test_a_fault_that_never_fired_fails_the_test_unless_optional(
    pytester: pytest.Pytester, up: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLKIT_CONFIG", upstream_config(up.base_url))
    pytester.makepyfile(test_faults=NEVER_FIRED)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "fault rate_limited@call=20 never fired: the run made 5 model calls" in out
    assert "no tool is named 'no_such_tool' (the wrapped tools: lookup)" in out
    assert "FAILED test_faults.py::test_late_fault" in out
    assert "FAILED test_faults.py::test_unknown_tool" in out
    assert "PASSED test_faults.py::test_optional_late_fault" in out
    # In trials, a trial where the fault did not fire is a failed trial: 2 of 4 here.
    assert "PASSED test_faults.py::test_trials_fault_fires_in_some_trials" in out
    assert "2/4" in out


def test_concurrent_agents_each_get_their_fault_at_their_own_call(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    """Four agents at once, each labelled with its conversation: the 429 lands on the 3rd call
    of every one of them, however their calls interleave."""
    plan = FaultPlan([faults.rate_limited(at=3)])
    gw = InProcessGateway(upstream_config(up.base_url), faults=plan).start()
    attempts: dict[str, list[str]] = {}
    start = threading.Barrier(4)

    def agent(name: str) -> None:
        with gw.openai(conversation=name) as client:
            start.wait()
            seen = []
            for i in range(5):
                raw = client.chat.completions.with_raw_response.create(
                    model="m", messages=[{"role": "user", "content": f"{name} {i}"}]
                )
                seen.append(raw.headers["x-turnout-attempts"])
            attempts[name] = seen

    threads = [threading.Thread(target=agent, args=(f"agent-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gw.stop()
    assert attempts == {f"agent-{i}": ["1", "1", "2", "1", "1"] for i in range(4)}
    assert sorted((i.conversation, i.call) for i in plan.injected) == [
        (f"agent-{i}", 3) for i in range(4)]  # fmt: skip
    assert plan.unfired() == []


def test_conversation_in_the_body_metadata_counts_the_same_way(up: ScriptedUpstream) -> None:
    plan = FaultPlan([faults.server_error(at=2)])
    gw = InProcessGateway(upstream_config(up.base_url), faults=plan).start()
    with gw.openai() as client:
        for conv in ("a", "b", "a", "b"):
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "q"}],
                metadata={"conversation_id": conv},
            )  # fmt: skip
    gw.stop()
    assert [(i.conversation, i.call) for i in plan.injected] == [("a", 2), ("b", 2)]


def test_tool_faults_count_per_agent_when_tools_are_wrapped_per_agent() -> None:
    plan = FaultPlan([faults.tool_error("lookup", 2)])
    first = plan.wrap_tools({"lookup": lambda: "ok"}, conversation="a")["lookup"]
    second = plan.wrap_tools({"lookup": lambda: "ok"}, conversation="b")["lookup"]
    results = [first(), second(), second(), first()]
    assert [r == "ok" for r in results] == [True, True, False, False]
