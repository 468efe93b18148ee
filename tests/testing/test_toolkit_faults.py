"""Tier 2: faults placed by position meet turnout's real lifecycle, the same way every run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
import pytest
from toolkit_helpers import TOOLS, sse_events, upstream_config
from upstream import ScriptedUpstream, Step

from turnout.testing import (
    Cassette,
    FaultPlan,
    InProcessGateway,
    Mode,
    ToolFault,
    faults,
    parse_fault,
)
from turnout.testing.fault_backend import violate

TOOL_STEP = Step(
    content=None,
    tool_calls=[{"function": {"name": "lookup", "arguments": {"order_id": "A1"}}}],
    finish_reason="tool_calls",
)


@pytest.fixture
def up() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(default=Step(content="fine answer here")) as u:
        yield u


Outcome = tuple[Any, ...]


def outcome(r: httpx.Response) -> Outcome:
    """What a call looked like to the client: status, turnout's outcome, attempts, the answer."""
    body = r.json()
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = [c["function"]["arguments"] for c in message.get("tool_calls") or ()]
    return (
        r.status_code,
        r.headers.get("x-turnout-outcome"),
        r.headers.get("x-turnout-attempts"),
        choice.get("finish_reason"),
        message.get("content"),
        tuple(calls),
        (body.get("error") or {}).get("code"),
    )


def session(
    up: ScriptedUpstream,
    plan: FaultPlan,
    cassette: Cassette | None = None,
    calls: int = 3,
    tools: bool = False,
    **lifecycle: Any,
) -> Callable[[], list[Outcome]]:
    config = upstream_config(up.base_url, **lifecycle)
    gw = InProcessGateway(config, faults=plan, cassette=cassette).start()
    http = httpx.Client(base_url=gw.url, timeout=30)

    def run() -> list[Outcome]:
        plan.reset()
        if cassette is not None:
            cassette.rewind()
        if tools:
            up.default = TOOL_STEP
        out = []
        for i in range(calls):
            body: dict[str, Any] = {
                "model": "m",
                "messages": [{"role": "user", "content": f"q{i}"}],
            }
            if tools:
                body["tools"] = TOOLS
            out.append(outcome(http.post("/v1/chat/completions", json=body)))
        return out

    run.stop = lambda: (http.close(), gw.stop())  # type: ignore[attr-defined]
    return run


def test_positions_read_and_print_the_same_way() -> None:
    for text in ("rate_limited@call=6", "server_error@every=3,status=503",
                 "tool_error@tool=lookup,call=2", "timeout@call=2,attempts=all"):  # fmt: skip
        assert str(parse_fault(text)) == text
    assert faults.tool_error("lookup", 2) == parse_fault("tool_error@tool=lookup,call=2")
    with pytest.raises(ValueError, match="unknown fault kind"):
        parse_fault("gremlins@call=1")


def test_a_429_at_call_2_is_retried_by_turnout_and_the_agent_never_sees_it(
    up: ScriptedUpstream,
) -> None:
    plan = FaultPlan([faults.rate_limited(at=2)])
    run = session(up, plan)
    got = run()
    run.stop()  # type: ignore[attr-defined]
    assert [o[:3] for o in got] == [(200, "completed", "1"), (200, "completed", "2"),
                                    (200, "completed", "1")]  # fmt: skip
    assert [(i.call, i.attempt) for i in plan.injected] == [(2, 1)]


def test_a_fault_on_every_attempt_reaches_the_agent_after_turnout_gives_up(
    up: ScriptedUpstream,
) -> None:
    run = session(up, FaultPlan(["server_error@call=2,attempts=all,status=503"]))
    got = run()
    run.stop()  # type: ignore[attr-defined]
    assert got[1][:3] == (503, "failed_upstream", "3") and got[1][-1] == "overloaded"
    assert got[0][:2] == got[2][:2] == (200, "completed")


def test_every_third_call_times_out_once(up: ScriptedUpstream) -> None:
    plan = FaultPlan([faults.timeout(every=3)])
    run = session(up, plan, calls=7)
    got = run()
    run.stop()  # type: ignore[attr-defined]
    assert [o[2] for o in got] == ["1", "1", "2", "1", "1", "2", "1"]
    assert [i.call for i in plan.injected] == [3, 6]


def test_finish_reason_length_is_flagged_truncated(up: ScriptedUpstream) -> None:
    run = session(up, FaultPlan([faults.truncated(at=1)]), calls=1, on_truncation="accept")
    [got] = run()
    run.stop()  # type: ignore[attr-defined]
    assert got[:5] == (200, "truncated", "1", "length", "fine")


def test_empty_content_is_caught_and_reasked(up: ScriptedUpstream) -> None:
    run = session(up, FaultPlan([faults.empty_content(at=1)]), calls=1)
    [got] = run()
    run.stop()  # type: ignore[attr-defined]
    assert got[:5] == (200, "completed", "2", "stop", "fine answer here")
    assert "not valid: the response was empty" in str(up.requests[1].body["messages"])


def test_malformed_tool_call_json_is_caught_and_reasked(up: ScriptedUpstream) -> None:
    run = session(up, FaultPlan([faults.malformed_tool_call(at=1)]), calls=1, tools=True)
    [got] = run()
    run.stop()  # type: ignore[attr-defined]
    assert got[:3] == (200, "completed", "2")
    assert orjson.loads(got[5][0]) == {"order_id": "A1"}
    feedback = up.requests[1].body["messages"][-1]
    assert feedback["role"] == "tool" and "not valid JSON" in feedback["content"]


def test_schema_violating_tool_arguments_reach_the_agent_when_turnout_may_not_reask(
    up: ScriptedUpstream,
) -> None:
    run = session(
        up, FaultPlan([faults.invalid_tool_arguments(at=1)]), calls=1, tools=True,
        on_invalid_output="fail",
    )  # fmt: skip
    [got] = run()
    run.stop()  # type: ignore[attr-defined]
    assert got[:3] == (502, "invalid_output", "1") and got[-1] == "bad_tool_call"


def test_violations_are_close_to_the_original_and_really_violate() -> None:
    schema = TOOLS[0]["function"]["parameters"]
    bad = violate(schema, {"order_id": "A1", "verbose": True})
    assert bad == {"verbose": True}  # the required argument is dropped first
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(bad)
    assert violate({}, {"x": 1}) == "not-an-object" or violate({}, {"x": 1}) is None


def test_a_stream_that_breaks_mid_way_ends_with_an_error_event(up: ScriptedUpstream) -> None:
    up.default = Step(content="one two three four five six seven")
    gw = InProcessGateway(upstream_config(up.base_url), faults=FaultPlan(
        [faults.broken_stream(at=1, after_chunks=2)])).start()  # fmt: skip
    raw, events = sse_events(gw.url, {"model": "m", "messages": [{"role": "user", "content": "x"}]})
    gw.stop()
    texts = [orjson.loads(e[6:]) for e in events]
    words = [t["choices"][0]["delta"].get("content") for t in texts[:-1]]
    assert words == ["", "one", " two"]
    assert texts[-1]["error"]["code"] == "broken_stream" and b"[DONE]" not in raw


def test_a_stream_that_breaks_before_the_first_token_is_retried_invisibly(
    up: ScriptedUpstream,
) -> None:
    gw = InProcessGateway(upstream_config(up.base_url), faults=FaultPlan(
        [faults.broken_stream(at=1, after_chunks=0)])).start()  # fmt: skip
    raw, _ = sse_events(gw.url, {"model": "m", "messages": [{"role": "user", "content": "x"}]})
    gw.stop()
    assert raw.endswith(b"data: [DONE]\n\n") and b"fine" in raw and len(up.requests) == 2


def test_tool_faults_hit_the_agents_own_tools_by_position() -> None:
    calls: list[str] = []

    def lookup(order_id: str) -> dict[str, str]:
        calls.append(order_id)
        return {"status": "shipped"}

    def weather(city: str) -> dict[str, str]:
        return {"sky": "clear"}

    plan = FaultPlan([faults.tool_error("lookup", 2), faults.tool_exception(every=4)])
    tools = plan.wrap_tools({"lookup": lookup, "weather": weather})
    assert tools["lookup"]("A1") == {"status": "shipped"}
    second = tools["lookup"]("A2")
    assert second["isError"] is True and "lookup" in second["content"][0]["text"]
    assert tools["weather"]("Paris") == {"sky": "clear"}
    with pytest.raises(ToolFault):
        tools["lookup"]("A3")  # the 4th tool call of any tool
    assert calls == ["A1"]
    plan.reset()
    assert tools["lookup"]("A4") == {"status": "shipped"}


SCENARIOS: dict[str, tuple[list[Any], dict[str, Any]]] = {
    "broken_stream": ([faults.broken_stream(at=1, attempts=2)], {}),
    "rate_limited": ([faults.rate_limited(at=2)], {}),
    "server_error": ([faults.server_error(every=2, status=502)], {}),
    "timeout": ([faults.timeout(at=2, attempts=None)], {}),
    "truncated": ([faults.truncated(at=1)], {"on_truncation": "fail"}),
    "empty_content": ([faults.empty_content(at=2)], {}),
    "malformed_tool_call": ([faults.malformed_tool_call(at=1)], {"tools": True}),
    "invalid_tool_arguments": ([faults.invalid_tool_arguments(every=2)], {"tools": True}),
}


@pytest.mark.parametrize("kind", sorted(SCENARIOS))
def test_fifty_runs_of_a_fault_give_the_same_outcome(
    up: ScriptedUpstream, tmp_path: Path, kind: str
) -> None:
    """The first run is live and recorded (faults included); the other 49 replay it, so faults
    on replayed answers are checked as well as on live ones."""
    chosen, options = SCENARIOS[kind]
    path = tmp_path / "c.json"
    live = session(up, FaultPlan(chosen), Cassette.load(path, Mode.ONCE), calls=2, **options)
    first = live()
    live.stop()  # type: ignore[attr-defined]
    up.stop()
    replay = Cassette.load(path, Mode.NONE)
    run = session(up, FaultPlan(chosen), replay, calls=2, **options)
    try:
        for _ in range(49):
            assert run() == first
    finally:
        run.stop()  # type: ignore[attr-defined]
    assert not replay.misses
    assert any(o[:3] != (200, "completed", "1") for o in first)  # the fault did something


def test_fifty_runs_of_tool_faults_give_the_same_outcome() -> None:
    plan = FaultPlan([faults.tool_error("lookup", 2), faults.tool_exception(every=3)])
    tools = plan.wrap_tools({"lookup": lambda order_id: {"ok": order_id}})

    def run() -> list[str]:
        plan.reset()
        out = []
        for i in range(6):
            try:
                out.append(orjson.dumps(tools["lookup"](f"A{i}")).decode())
            except ToolFault as exc:
                out.append(f"raised {exc}")
        return out

    first = run()
    assert all(run() == first for _ in range(49))
    assert "isError" in first[1] and first[2].startswith("raised")


def test_a_stream_broken_by_a_fault_while_recording_replays_the_same(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    up.default = Step(content="one two three four five six seven")
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    seen = []
    for mode in (Mode.ONCE, Mode.NONE):
        cassette = Cassette.load(tmp_path / "c.json", mode)
        plan = FaultPlan([faults.broken_stream(at=1, after_chunks=3)])
        gw = InProcessGateway(upstream_config(up.base_url), cassette=cassette, faults=plan).start()
        seen.append(sse_events(gw.url, body)[1])
        gw.stop()
        assert not cassette.misses
    assert seen[0] == seen[1] and b"broken_stream" in seen[1][-1]


def test_fifty_runs_of_a_stream_broken_mid_way_give_the_same_bytes(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    up.default = Step(content="one two three four five six seven")
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    plan = FaultPlan([faults.broken_stream(at=1, after_chunks=3)])
    cassette = Cassette.load(tmp_path / "c.json", Mode.ONCE)
    gw = InProcessGateway(upstream_config(up.base_url), cassette=cassette, faults=plan).start()
    runs = []
    for _ in range(50):
        plan.reset()
        cassette.rewind()
        runs.append(sse_events(gw.url, body)[1])
    gw.stop()
    assert all(r == runs[0] for r in runs) and b"broken_stream" in runs[0][-1]
    assert len(up.requests) == 1  # recorded once, the 49 others replayed
