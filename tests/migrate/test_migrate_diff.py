"""The behavioural diff's pieces: features, JSON and tool-call comparison, the record reader."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from turnout.migrate.diff import calibrate, checks, diff, normalise, quantile_interval
from turnout.migrate.features import Features, json_diff, language, parse_json, tool_trajectory
from turnout.migrate.records import Answer, Recorded, SelectionError, parse_since, select
from turnout.migrate.replay import Overrides, Pair, replay_body
from turnout.store.sqlite import INSERT, connect


def call(name: str, args: str) -> dict[str, object]:
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": args}}


def test_format_features_see_fences_markdown_and_language() -> None:
    f = Features.of("# Title\n\n- one\n- two\n\n```python\nprint(1)\n```\n")
    assert f.fences == ("python",) and {"heading", "list"} <= set(f.markdown)
    assert language("The cat is on the mat and it is happy.") == "en"
    assert language("Le chat est sur le tapis et je ne sais pas pourquoi.") == "fr"
    assert language("Кошка сидит на ковре.") == "cyrillic"
    assert Features.of("I'm sorry, but I can't help with that.").refusal


def test_json_diff_separates_structure_from_values() -> None:
    ok, a = parse_json('```json\n{"name": "Alice", "age": 30}\n```')
    assert ok
    same_shape, share, paths = json_diff(a, {"name": "Bob", "age": 30})
    assert same_shape and share == 0.5 and paths == ["$.name"]
    other_shape, _, _ = json_diff(a, {"name": "Alice", "age": "30"})
    assert not other_shape


def test_tool_trajectories_compare_parsed_arguments() -> None:
    a = tool_trajectory([call("weather", '{"city": "Paris", "unit": "C"}')])
    b = tool_trajectory([call("weather", '{"unit": "C",  "city": "Paris"}')])
    c = tool_trajectory([call("weather", '{"city": "Lyon", "unit": "C"}')])
    assert a == b and a != c and [n for n, _ in c] == ["weather"]


def test_normalised_match_ignores_case_spacing_and_punctuation() -> None:
    assert normalise("Paris!  The capital.") == normalise("paris the capital")


def pair(pid: str, recorded: str, old: str, new: str, **request: object) -> Pair:
    return Pair(
        pid, "local", "edge", "chat", "chat", dict(request), Answer(recorded), Answer(old),
        Answer(new),
    )  # fmt: skip


def test_semantic_threshold_comes_from_the_old_model_against_itself() -> None:
    pairs = [
        pair("1", "The capital of France is Paris.", "Paris is the capital of France.",
             "Bananas are yellow fruit."),
        pair("2", "Water boils at 100 degrees.", "Water boils at one hundred degrees Celsius.",
             "Water boils at 100 degrees."),
    ]  # fmt: skip
    diffs, cal = diff(pairs)
    old_sims = [d.old.similarity for d in diffs]
    assert cal.threshold == pytest.approx(calibrate(np.array(old_sims)).threshold)
    assert min(old_sims) - 0.03 < cal.threshold < max(old_sims)
    assert not diffs[0].candidate.semantic_match and diffs[0].lost == ["semantic_match"]
    assert diffs[1].candidate.exact and diffs[1].candidate.semantic_match


def test_json_requests_are_judged_on_validity_and_shape() -> None:
    fmt = {"type": "json_object"}
    p = pair("1", '{"a": 1}', '{"a": 2}', "a is 1", response_format=fmt)
    (d,), _ = diff([p])
    assert d.old.valid and d.old.json_structure_match and d.old.json_value_share == 0.0
    assert not d.candidate.valid and not d.candidate.json_valid
    assert {"valid", "json_match"} <= set(d.lost)


def test_overrides_touch_the_candidate_only() -> None:
    body = {"messages": [{"role": "system", "content": "old"}, {"role": "user", "content": "hi"}]}
    new = Overrides(system="new", params=(("temperature", 0.9),)).apply(body)
    assert new["messages"][0] == {"role": "system", "content": "new"} and new["temperature"] == 0.9
    assert body["messages"][0]["content"] == "old" and "temperature" not in body


def test_the_replay_grants_the_budget_of_the_recorded_attempt() -> None:
    rec = Recorded("r1", 0.0, "local", "edge", "chat", {"max_tokens": 16, "stream": True,
                   "model": "local"}, Answer("x"), final_max_tokens=64)  # fmt: skip
    body = replay_body(rec, seed=7)
    assert body["max_tokens"] == 64 and "stream" not in body and "model" not in body
    assert isinstance(body["seed"], int)


def test_since_accepts_durations_dates_and_timestamps() -> None:
    now = 1_000_000.0
    assert parse_since("2h", now) == now - 7200
    assert parse_since("1700000000", now) == 1_700_000_000
    assert parse_since("2024-01-01T00:00:00Z", now) == 1_704_067_200
    with pytest.raises(SelectionError, match="--since 'soon'"):
        parse_since("soon", now)


def write_row(
    db: Path, rid: str, request: object, response: object, outcome: str = "completed"
) -> None:
    conn = connect(db)
    attempts = [{"ok": True, "finish_reason": "length", "completion_tokens": 32}]
    now = time.time()
    row = (rid, now, now, "local", "chat", 0, outcome, 200, '["edge"]', 1, 5, 32, 0.0, None,
           10.0, None, "[]", orjson.dumps(attempts).decode(), orjson.dumps(request).decode(),
           orjson.dumps(response).decode(), None, "chat.completions", None, None, None)  # fmt: skip
    conn.execute(INSERT, row)
    conn.close()


def test_select_reads_streamed_answers_and_the_final_budget(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    request = {"model": "local", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    message = {"role": "assistant", "content": None, "tool_calls": [call("f", "{}")]}
    write_row(db, "a", request, message)
    (rec,) = select(f"sqlite:///{db}", models=("local",))
    assert rec.answer.tool_calls and rec.answer.finish_reason == "length"
    assert rec.final_max_tokens == 32 and rec.category == "chat"


def test_select_refuses_redacted_records_and_says_why(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    redacted = {"messages": [{"role": "user", "content": "[redacted: 2 chars]"}]}
    write_row(db, "a", redacted, {"role": "assistant", "content": "[redacted: 5 chars]"})
    with pytest.raises(SelectionError, match="redacted bodies: record_bodies: full"):
        select(f"sqlite:///{db}", models=("local",))
    with pytest.raises(SelectionError, match="no record store"):
        select(f"sqlite:///{tmp_path / 'none.db'}", models=("local",))


def test_a_failed_call_fails_every_check_that_needs_an_answer() -> None:
    failed = Answer(error="failed_upstream: 503 Service Unavailable")
    p = Pair("1", "local", "edge", "chat", "chat", {}, Answer("Paris."), Answer("Paris."), failed)
    (d,), _ = diff([p])
    needs_answer = {
        "valid", "semantic_match", "format_match", "language_match", "refusal_match",
        "not_truncated",
    }  # fmt: skip
    assert {name for name, _ in checks(d)} == needs_answer
    assert set(d.lost) == needs_answer
    tools = Pair("2", "local", "edge", "tools", "chat", {"tools": [{"type": "function"}]},
                 Answer("ok"), Answer("ok"), failed)  # fmt: skip
    (t,), _ = diff([tools])
    assert "tool_calls_match" in t.lost  # no call is not the same as the recorded no call


def test_an_answer_closer_to_the_prompt_than_to_the_recorded_one_is_no_match() -> None:
    ask = "What is the capital of France? Answer in one sentence."
    request = {"messages": [{"role": "user", "content": ask}]}
    p = Pair("1", "local", "edge", "chat", "chat", request,
             Answer("The capital of France is Paris."), Answer("Paris is the capital of France."),
             Answer(ask))  # fmt: skip
    loose = calibrate(np.array([0.0]))  # a threshold every answer here clears
    (d,), _ = diff([p], calibration=loose)
    assert d.candidate.similarity >= loose.threshold
    assert d.candidate.echo and not d.candidate.semantic_match
    assert d.old.semantic_match and not d.old.echo
    assert d.lost == ["semantic_match"]


def test_the_threshold_comes_with_an_interval_that_narrows_with_pairs() -> None:
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(400):
        lo, hi = quantile_interval(rng.random(60), 0.10)
        covered += lo <= 0.10 <= hi
    assert covered / 400 >= 0.93  # a 95% interval for the 0.1 quantile of U(0, 1)
    few = calibrate(rng.random(30))
    many = calibrate(rng.random(3000))
    assert few.interval[0] <= few.threshold <= few.interval[1]
    assert many.interval[1] - many.interval[0] < (few.interval[1] - few.interval[0]) / 3
    assert "95% interval" in few.describe() and "30 reruns" in few.describe()
