"""Assertions that fit non-determinism: tool trajectories and JSON schemas."""

from __future__ import annotations

import pytest

from turnout.testing import (
    ANY,
    Call,
    OneOf,
    Regex,
    ToolCall,
    assert_json_schema,
    assert_trajectory,
    match_trajectory,
)

RUN = [
    ("lookup_order", {"order_id": "A1234"}),
    ("track_shipment", {"tracking_id": "TRK-9", "carrier": "ups"}),
    ("get_weather", {"city": "Paris"}),
]


def test_strict_needs_the_same_calls_in_the_same_order() -> None:
    assert match_trajectory(RUN, ["lookup_order", "track_shipment", "get_weather"]).ok
    result = match_trajectory(RUN, ["track_shipment", "lookup_order", "get_weather"])
    assert not result.ok
    assert (
        "call 1: expected track_shipment(…), got lookup_order(order_id='A1234')" in result.explain()
    )


def test_unordered_accepts_another_order_but_not_another_set() -> None:
    assert match_trajectory(RUN, ["get_weather", "lookup_order", "track_shipment"], "unordered")
    result = match_trajectory(RUN, ["get_weather", "lookup_order"], "unordered")
    assert result.problems == [
        "unexpected call: track_shipment(tracking_id='TRK-9', carrier='ups')"
    ]


def test_superset_allows_extra_calls_subset_forbids_them() -> None:
    assert match_trajectory(RUN, ["get_weather", "lookup_order"], "superset")
    assert not match_trajectory(RUN, ["get_weather", "lookup_order"], "subset")
    assert match_trajectory(RUN[:1], ["get_weather", "lookup_order"], "subset")
    missing = match_trajectory(RUN[:1], ["get_weather", "lookup_order"], "superset")
    assert missing.problems == ["expected call not made: get_weather(…)"]


def test_argument_matchers() -> None:
    expected = [
        Call("lookup_order", {"order_id": Regex(r"^A\d{4}$")}),
        Call("track_shipment", {"carrier": OneOf("ups", "dhl")}),
        Call("get_weather", {"city": lambda c: c.lower() == "paris"}),
    ]
    assert_trajectory(RUN, expected)
    assert match_trajectory(RUN, [Call("get_weather", {"city": ANY})], "superset")
    assert not match_trajectory(RUN, [Call("lookup_order", {"order_id": "B1"})], "superset")
    exact = Call("track_shipment", {"tracking_id": "TRK-9"}, exact=True)
    assert not match_trajectory(RUN, [exact], "superset")  # carrier was not expected


def test_matching_assigns_calls_so_that_a_broad_expectation_does_not_steal_a_narrow_ones() -> None:
    run = [("search", {"q": "a"}), ("search", {"q": "b"})]
    assert match_trajectory(run, [Call("search"), Call("search", {"q": "a"})], "unordered")


def test_trajectories_are_read_from_openai_messages() -> None:
    messages = [
        {"role": "user", "content": "where is my order?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "lookup_order", "arguments": '{"order_id": "A1234"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{}"},
        {"role": "assistant", "content": "It shipped."},
    ]  # fmt: skip
    assert_trajectory(messages, [Call("lookup_order", {"order_id": "A1234"})])
    assert match_trajectory(messages, []).actual == [
        ToolCall("lookup_order", {"order_id": "A1234"})
    ]


def test_assert_trajectory_explains_what_differs() -> None:
    with pytest.raises(AssertionError, match="expected call not made: cancel_order"):
        assert_trajectory(RUN, ["cancel_order"], "superset")


def test_json_schema_assertion_names_where_it_fails() -> None:
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "integer"}}},
        "required": ["items"],
    }
    assert assert_json_schema('{"items": [1, 2]}', schema) == {"items": [1, 2]}
    with pytest.raises(AssertionError, match=r"at items/1: 'x' is not of type 'integer'"):
        assert_json_schema({"items": [1, "x"]}, schema)
    with pytest.raises(AssertionError, match="not valid JSON"):
        assert_json_schema("{nope", schema)
