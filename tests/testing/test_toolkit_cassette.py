"""Tier 1: cassettes record real answers at the backend seam and replay them exactly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import orjson
import pytest
from toolkit_helpers import TOOLS, sse_events, upstream_config
from upstream import ScriptedUpstream, Step

from turnout.backends.base import Operation, UpstreamRequest
from turnout.testing import Cassette, InProcessGateway, Mode
from turnout.testing.keys import canonical_request, explain_miss, request_key
from turnout.testing.redact import Redactor


def key_of(body: dict) -> str:
    return request_key(canonical_request("up", UpstreamRequest(Operation.CHAT, body, "r1"), False))


def test_key_ignores_what_does_not_change_the_answer() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    same = {
        "temperature": 0.0,
        "messages": [{"content": "hi", "role": "user", "name": None}],
        "model": "m",
        "user": "someone",
        "stream_options": {"include_usage": True},
        "metadata": {"trace": "x"},
    }
    assert key_of(base) == key_of(same)


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [{"role": "user", "content": "hi!"}]},
        {"model": "other"},
        {"tools": TOOLS},
        {"tool_choice": "required"},
        {"temperature": 0.7},
        {"max_tokens": 5},
        {"response_format": {"type": "json_object"}},
        {"seed": 1},
    ],
)
def test_key_changes_with_what_changes_the_answer(change: dict) -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    assert key_of(base) != key_of({**base, **change})


def test_a_miss_is_explained_by_a_diff_against_the_nearest_recorded_request() -> None:
    recorded = [
        {"model": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
        {"model": "m", "messages": [{"role": "user", "content": "Something else entirely"}]},
    ]
    asked = {
        "model": "m",
        "messages": [{"role": "user", "content": "What is the capital of Spain?"}],
    }
    text = explain_miss(asked, recorded)
    assert "messages[0].content" in text
    assert '-      "content": "What is the capital of France?"' in text
    assert '+      "content": "What is the capital of Spain?"' in text


def test_secrets_are_replaced_before_anything_is_written() -> None:
    env = {"CLOUD_API_KEY": "s3cr3t-value-1234", "HOME": "/root"}
    r = Redactor.from_environment(env=env)
    text = r.value({"a": ["key s3cr3t-value-1234 and sk-abcdefghijklmnopqrstuv", "/root"]})
    assert text == {"a": ["key <redacted:CLOUD_API_KEY> and <redacted:key>", "/root"]}


# -- through a real gateway and a real HTTP upstream ---------------------------------------


@pytest.fixture
def up() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as u:
        yield u


def run_gateway(up: ScriptedUpstream, cassette: Cassette, **lifecycle: object) -> InProcessGateway:
    return InProcessGateway(upstream_config(up.base_url, **lifecycle), cassette=cassette).start()


def ask(gw: InProcessGateway, content: str, **extra: object) -> openai.types.chat.ChatCompletion:
    with gw.openai() as client:
        return client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": content}], **extra
        )


def test_record_then_replay_gives_identical_answers_without_the_upstream(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    call = {"function": {"name": "lookup", "arguments": {"order_id": "A1"}}}
    up.script(
        Step(content=f"first {uuid.uuid4()}"),
        Step(content=None, tool_calls=[call], finish_reason="tool_calls"),
    )
    gw = run_gateway(up, Cassette.load(path, Mode.ONCE))
    recorded = [ask(gw, "one"), ask(gw, "two", tools=TOOLS)]
    gw.stop()
    up.stop()  # replay must not need it

    cassette = Cassette.load(path, Mode.NONE)
    gw = run_gateway(up, cassette)
    replayed = [ask(gw, "one"), ask(gw, "two", tools=TOOLS)]
    gw.stop()
    assert [r.model_dump() for r in replayed] == [r.model_dump() for r in recorded]
    assert cassette.replayed == 2 and not cassette.misses and not cassette.new


def test_repeated_identical_calls_replay_their_own_answers_in_order(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    up.script(Step(content="answer A"), Step(content="answer B"), Step(content="answer C"))
    gw = run_gateway(up, Cassette.load(path, Mode.ONCE))
    first = [ask(gw, "same question").choices[0].message.content for _ in range(3)]
    gw.stop()
    gw = run_gateway(up, Cassette.load(path, Mode.NONE))
    again = [ask(gw, "same question").choices[0].message.content for _ in range(3)]
    gw.stop()
    assert first == again == ["answer A", "answer B", "answer C"]


def test_streaming_replay_is_byte_identical_event_by_event(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    up.script(Step(content="one two three four five six"))
    body = {"model": "m", "messages": [{"role": "user", "content": "count"}],
            "stream_options": {"include_usage": True}}  # fmt: skip
    gw = run_gateway(up, Cassette.load(path, Mode.ONCE))
    live_raw, live_events = sse_events(gw.url, body)
    gw.stop()
    up.stop()
    gw = run_gateway(up, Cassette.load(path, Mode.NONE))
    replay_raw, replay_events = sse_events(gw.url, body)
    gw.stop()
    assert replay_raw == live_raw
    assert replay_events == live_events and len(live_events) >= 9  # role, 6 words, finish, usage…
    stored = orjson.loads(path.read_bytes())["entries"][0]["response"]["stream"]
    assert len(stored) == len(live_events) - 1  # every upstream event, then turnout's [DONE]


def test_a_recorded_upstream_failure_replays_through_the_real_lifecycle(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    up.script(Step(status=429), Step(content="after the retry"))
    gw = run_gateway(up, Cassette.load(path, Mode.ONCE))
    with gw.openai() as client:
        live = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    gw.stop()
    up.stop()
    gw = run_gateway(up, Cassette.load(path, Mode.NONE))
    with gw.openai() as client:
        again = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    gw.stop()
    for raw in (live, again):
        assert raw.headers["x-turnout-attempts"] == "2"
        assert raw.headers["x-turnout-outcome"] == "completed"
        assert raw.parse().choices[0].message.content == "after the retry"


def test_mode_none_fails_an_unknown_request_with_the_diff(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    gw = run_gateway(up, Cassette.load(path, Mode.ONCE))
    ask(gw, "What is the capital of France?")
    gw.stop()
    cassette = Cassette.load(path, Mode.NONE)
    gw = run_gateway(up, cassette)
    with pytest.raises(openai.BadRequestError) as info:
        ask(gw, "What is the capital of Spain?")
    gw.stop()
    message = str(info.value)
    assert "has no answer for this request" in message and "messages[0].content" in message
    assert len(cassette.misses) == 1 and "Spain" in cassette.misses[0]
    assert len(up.requests) == 1  # only the recording reached the upstream


def test_mode_none_without_a_cassette_says_how_to_record_one(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    cassette = Cassette.load(tmp_path / "missing.json", Mode.NONE)
    gw = run_gateway(up, cassette)
    with pytest.raises(openai.BadRequestError, match="no cassette at"):
        ask(gw, "hi")
    gw.stop()
    assert not up.requests and not (tmp_path / "missing.json").exists()


def test_new_episodes_records_only_what_is_new_and_all_rewrites(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    gw = run_gateway(up, Cassette.load(path, Mode.ONCE))
    ask(gw, "old")
    gw.stop()
    cassette = Cassette.load(path, Mode.NEW_EPISODES)
    gw = run_gateway(up, cassette)
    ask(gw, "old")
    ask(gw, "new")
    gw.stop()
    assert (cassette.replayed, len(cassette.new), len(up.requests)) == (1, 1, 2)
    assert len(orjson.loads(path.read_bytes())["entries"]) == 2

    cassette = Cassette.load(path, Mode.ALL)
    gw = run_gateway(up, cassette)
    ask(gw, "only this")
    gw.stop()
    assert cassette.replayed == 0
    entries = orjson.loads(path.read_bytes())["entries"]
    assert [e["request"]["messages"][0]["content"] for e in entries] == ["only this"]


def test_once_replays_when_the_cassette_exists(up: ScriptedUpstream, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    for _ in range(2):
        gw = run_gateway(up, Cassette.load(path, Mode.ONCE))
        ask(gw, "hi")
        gw.stop()
    assert len(up.requests) == 1


def test_the_cassette_never_holds_the_api_key_or_a_secret_in_text(
    up: ScriptedUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_API_KEY", "sk-live-0123456789abcdefXYZ")
    config = upstream_config(up.base_url).replace(
        "model: upstream-model", "model: upstream-model\n    api_key_env: UPSTREAM_API_KEY"
    )
    up.script(Step(content="your key is sk-live-0123456789abcdefXYZ"))
    path = tmp_path / "c.json"
    gw = InProcessGateway(config, cassette=Cassette.load(path, Mode.ONCE)).start()
    ask(gw, "echo my key sk-live-0123456789abcdefXYZ")
    gw.stop()
    assert up.requests[0].headers["authorization"] == "Bearer sk-live-0123456789abcdefXYZ"
    text = path.read_text()
    assert "0123456789abcdef" not in text
    assert "<redacted:UPSTREAM_API_KEY>" in text


WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
CLOCK = {"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}}


def test_reordered_tools_are_one_difference_that_says_only_the_order_changed() -> None:
    recorded = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "tools": [TOOLS[0], WEATHER, CLOCK]}  # fmt: skip
    asked = {**recorded, "tools": [CLOCK, TOOLS[0], WEATHER]}
    text = explain_miss(asked, [recorded])
    assert text == (
        "differs from the nearest recorded request only in order: tools (only the order "
        "changed: recorded lookup, weather, clock; now clock, lookup, weather)"
    )


def test_a_reordering_next_to_a_real_change_diffs_only_the_real_change() -> None:
    recorded = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "tools": [TOOLS[0], WEATHER]}  # fmt: skip
    asked = {"model": "m", "messages": [{"role": "user", "content": "hello"}],
             "tools": [WEATHER, TOOLS[0]]}  # fmt: skip
    text = explain_miss(asked, [recorded])
    assert text.startswith(
        "differs from the nearest recorded request at: messages[0].content, tools (only the "
        "order changed: recorded lookup, weather; now weather, lookup)"
    )
    changed = [line for line in text.splitlines()[1:] if line[:1] in "+-"]
    assert changed == ["--- recorded (nearest)", "+++ requested",
                       '-      "content": "hi",', '+      "content": "hello",']  # fmt: skip


def test_a_retried_miss_points_back_to_the_first_instead_of_repeating_its_diff(
    up: ScriptedUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    gw = run_gateway(up, Cassette.load(path, Mode.ONCE))
    ask(gw, "What is the capital of France?")
    gw.stop()
    cassette = Cassette.load(path, Mode.NONE)
    gw = run_gateway(up, cassette)
    errors = []
    for _ in range(3):  # an agent that retries what failed
        with pytest.raises(openai.BadRequestError) as info:
            ask(gw, "What is the capital of Spain?")
        errors.append(str(info.value))
    gw.stop()
    assert "differs from the nearest recorded request" in errors[0]
    for n, later in ((2, errors[1]), (3, errors[2])):
        assert f"repeat #{n}): the same request as miss #1 above, asked again" in later
        assert "Spain" not in later and "France" not in later
    assert len(cassette.misses) == 3 and sum("@@" in m for m in cassette.misses) == 1
