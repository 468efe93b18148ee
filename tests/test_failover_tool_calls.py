"""Streamed tool calls from a server that repeats the name and id in every delta."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from failover_helpers import config, record, stream_chat
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

Factory = Callable[[str], RunningGateway]
ARGS = {"city": "Paris", "unit": "celsius", "days": 3}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string"},
                    "days": {"type": "integer"},
                },
                "required": ["city"],
            },
        },
    }
]


@pytest.mark.parametrize("repeating", [True, False], ids=["name-repeating", "openai-style"])
def test_streamed_tool_call_reaches_the_client_with_its_name_once(
    upstream: ScriptedUpstream, gateway_factory: Factory, repeating: bool
) -> None:
    gw = gateway_factory(config({"a": (upstream, "")}))
    call = {"id": "call_weather_1", "function": {"name": "get_weather", "arguments": ARGS}}
    upstream.script(
        Step(
            content=None,
            tool_calls=[call],
            finish_reason="tool_calls",
            repeat_tool_call_names=repeating,
        )
    )
    got = stream_chat(gw, tools=TOOLS)

    assert got.error is None, got.error_events
    # Accumulated as the SDK's own stream helpers and most clients do: strings concatenated.
    acc: dict[int, dict[str, Any]] = {}
    names_seen: dict[int, int] = {}
    for chunk in got.chunks:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            slot = acc.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] += tc.id or ""
            if tc.function is not None:
                if tc.function.name:
                    names_seen[tc.index] = names_seen.get(tc.index, 0) + 1
                slot["name"] += tc.function.name or ""
                slot["arguments"] += tc.function.arguments or ""
    assert list(acc) == [0]
    assert names_seen == {0: 1}
    assert acc[0]["name"] == "get_weather"
    assert acc[0]["id"] == "call_weather_1"
    assert json.loads(acc[0]["arguments"]) == ARGS
    assert got.finish_reasons == ["tool_calls"]

    rec = record(gw, got.request_id)
    assert rec["outcome"] == "completed"
    (recorded,) = rec["response_body"]["tool_calls"]
    assert recorded["function"]["name"] == "get_weather"
    assert recorded["id"] == "call_weather_1"
    assert json.loads(recorded["function"]["arguments"]) == ARGS
