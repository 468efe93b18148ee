"""Intent signals through the real gateway: each signal is read from the conversation a client
sends, counted against the request that produced the missed answer, and shown in the header,
the record, the span and the metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gateway_harness import RunningGateway, spans_of
from upstream import ScriptedUpstream, Step

from turnout.intent.calibration import CALIBRATED
from turnout.store.read import open_reader

SYSTEM = {"role": "system", "content": "You answer questions about Python."}
ASKED = "How do I sort a list in Python?"
ANSWER = "Use sorted(my_list) for a new list, or my_list.sort() to sort it in place."


@pytest.fixture
def upstreams() -> Iterator[tuple[ScriptedUpstream, ScriptedUpstream]]:
    with ScriptedUpstream(Step(content=ANSWER)) as a, ScriptedUpstream(Step(content=ANSWER)) as b:
        yield a, b


def config(a: ScriptedUpstream, b: ScriptedUpstream, intent: str = "") -> str:
    extra = f", intent: {{{intent}}}" if intent else ""
    return f"""
deployments:
  a: {{kind: openai, base_url: "{a.base_url}", model: m, rtt_probe_s: 0}}
  b: {{kind: openai, base_url: "{b.base_url}", model: m, rtt_probe_s: 0}}
models:
  assistant: {{deployments: [a, b]{extra}}}
  other: {{deployments: [b]{extra}}}
"""


def chat(gw: RunningGateway, model: str, *turns: str, **extra: Any) -> Any:
    """Turns alternate user, assistant, user, … after the system prompt."""
    roles = ("user", "assistant")
    messages = [SYSTEM] + [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]
    r = gw.chat(model=model, messages=messages, **extra)
    assert r.status_code == 200, r.text
    return r


def intent_of(gw: RunningGateway, request_id: str) -> dict[str, Any]:
    record = gw.record(request_id)
    attrs: dict[str, Any] = record["attrs"]
    return attrs


Factory = Callable[[str], RunningGateway]


def test_a_correction_counts_against_the_deployment_that_gave_the_earlier_answer(
    gateway_factory: Factory, upstreams: tuple[ScriptedUpstream, ScriptedUpstream]
) -> None:
    gw = gateway_factory(config(*upstreams))
    first = chat(gw, "other", ASKED)
    assert first.headers["x-turnout-deployment"] == "b"
    second = chat(
        gw, "assistant", ASKED, ANSWER, "No, I meant sorting by the second item of each tuple."
    )
    assert second.headers["x-turnout-intent"] == "correction"
    assert second.headers["x-turnout-deployment"] == "a"
    attrs = intent_of(gw, second.headers["x-turnout-request-id"])
    missed = attrs["intent"]["missed"]
    assert missed["request_id"] == first.headers["x-turnout-request-id"]
    assert (missed["deployment"], missed["model"], missed["route"]) == ("b", "other", "primary")
    assert missed["prompt"] == intent_of(gw, missed["request_id"])["prompt"]
    (span, *_) = spans_of(second.headers["x-turnout-request-id"])
    assert span.attributes is not None
    assert span.attributes["turnout.intent.signals"] == "correction"
    assert span.attributes["turnout.intent.missed_request_id"] == missed["request_id"]
    metrics = gw.http.get("/metrics").text
    assert 'turnout_intent_signals_total{model="assistant",signal="correction"} 1.0' in metrics


def test_a_rephrase_is_found_by_meaning_and_attributed_to_the_earlier_answer(
    gateway_factory: Factory, upstreams: tuple[ScriptedUpstream, ScriptedUpstream]
) -> None:
    gw = gateway_factory(config(*upstreams, "semantic_wait_ms: 30000"))
    first = chat(gw, "other", ASKED)
    restated = "How can I get a Python list sorted?"
    second = chat(gw, "assistant", ASKED, ANSWER, restated)
    assert second.headers["x-turnout-intent"] == "rephrase"
    intent = intent_of(gw, second.headers["x-turnout-request-id"])["intent"]
    assert intent["lexical"] < CALIBRATED.lexical_certain  # the words alone did not settle it
    assert intent["semantic"] >= CALIBRATED.semantic
    assert intent["missed"]["request_id"] == first.headers["x-turnout-request-id"]
    assert intent["missed"]["deployment"] == "b"


def test_an_ordinary_follow_up_carries_no_signal(
    gateway_factory: Factory, upstreams: tuple[ScriptedUpstream, ScriptedUpstream]
) -> None:
    gw = gateway_factory(config(*upstreams, "semantic_wait_ms: 30000"))
    chat(gw, "assistant", ASKED)
    follow = chat(gw, "assistant", ASKED, ANSWER, "Thanks! And how do I remove duplicates from it?")
    assert follow.headers["x-turnout-intent"] == ""
    intent = intent_of(gw, follow.headers["x-turnout-request-id"])["intent"]
    assert intent["signals"] == []
    assert intent["missed"]["deployment"] == "a"  # known, but not missed
    assert "turnout_intent_signals_total{" not in gw.http.get("/metrics").text


def test_a_new_question_on_the_same_topic_is_no_rephrase_and_asks_no_model(
    gateway_factory: Factory, upstreams: tuple[ScriptedUpstream, ScriptedUpstream]
) -> None:
    gw = gateway_factory(config(*upstreams, "semantic_wait_ms: 30000"))
    chat(gw, "assistant", ASKED)
    near = chat(gw, "assistant", ASKED, ANSWER, "How do I sort a dictionary by value in Python?")
    assert near.headers["x-turnout-intent"] == ""
    intent = intent_of(gw, near.headers["x-turnout-request-id"])["intent"]
    assert intent["signals"] == [] and intent["new_question"] is True
    assert "semantic" not in intent  # settled by the words, before the model


def test_the_same_conversation_resent_is_a_regenerate_of_the_first_answer(
    gateway_factory: Factory, upstreams: tuple[ScriptedUpstream, ScriptedUpstream]
) -> None:
    gw = gateway_factory(config(*upstreams))
    first = chat(gw, "assistant", ASKED)
    assert first.headers["x-turnout-intent"] == ""
    again = chat(gw, "assistant", ASKED)
    assert again.headers["x-turnout-intent"] == "regenerate"
    intent = intent_of(gw, again.headers["x-turnout-request-id"])["intent"]
    assert intent["missed"]["request_id"] == first.headers["x-turnout-request-id"]


def test_an_assistant_question_makes_the_next_turn_a_clarification_not_a_miss(
    gateway_factory: Factory, upstreams: tuple[ScriptedUpstream, ScriptedUpstream]
) -> None:
    gw = gateway_factory(config(*upstreams))
    r = chat(gw, "assistant", "Sort my data", "Do you mean a Python list or a pandas DataFrame?",
             "No, I meant the DataFrame.")  # fmt: skip
    assert r.headers["x-turnout-intent"] == "clarification"


def test_a_stream_carries_the_signal_in_its_headers(
    gateway_factory: Factory, upstreams: tuple[ScriptedUpstream, ScriptedUpstream]
) -> None:
    gw = gateway_factory(config(*upstreams))
    chat(gw, "assistant", ASKED)
    messages = [SYSTEM, {"role": "user", "content": ASKED},
                {"role": "assistant", "content": ANSWER},
                {"role": "user", "content": "That's not what I asked."}]  # fmt: skip
    with gw.http.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "assistant", "messages": messages, "stream": True},
    ) as r:
        assert r.status_code == 200
        assert r.headers["x-turnout-intent"] == "correction"
        r.read()


def test_escalation_sends_a_correction_to_the_next_deployment_and_says_so(
    gateway_factory: Factory, upstreams: tuple[ScriptedUpstream, ScriptedUpstream]
) -> None:
    gw = gateway_factory(config(*upstreams, "on_rephrase: escalate"))
    first = chat(gw, "assistant", ASKED)
    assert first.headers["x-turnout-deployment"] == "a"
    fix = chat(gw, "assistant", ASKED, ANSWER, "That's wrong, I asked about sorting in reverse.")
    assert fix.headers["x-turnout-deployment"] == "b"
    assert "intent=correction; from=a" in fix.headers["x-turnout-route"]
    plain = chat(gw, "assistant", ASKED, ANSWER, "Great, and how do I reverse it?")
    assert plain.headers["x-turnout-deployment"] == "a"
    assert (
        "x-turnout-route" not in plain.headers or "intent=" not in plain.headers["x-turnout-route"]
    )


def test_escalation_is_off_by_default(
    gateway_factory: Factory, upstreams: tuple[ScriptedUpstream, ScriptedUpstream]
) -> None:
    gw = gateway_factory(config(*upstreams))
    chat(gw, "assistant", ASKED)
    fix = chat(gw, "assistant", ASKED, ANSWER, "That's wrong, I asked about sorting in reverse.")
    assert fix.headers["x-turnout-intent"] == "correction"
    assert fix.headers["x-turnout-deployment"] == "a"


def test_feedback_by_request_id_is_recorded(
    gateway_factory: Factory, upstreams: tuple[ScriptedUpstream, ScriptedUpstream]
) -> None:
    gw = gateway_factory(config(*upstreams))
    rid = chat(gw, "assistant", ASKED).headers["x-turnout-request-id"]
    body = {"request_id": rid, "label": "misunderstood", "score": -0.5, "comment": "not that"}
    r = gw.post("/v1/feedback", body)
    assert r.status_code == 200, r.text
    assert r.json()["request_id"] == rid
    with open_reader(gw.gateway.config.store.url) as reader:
        (item,) = reader.feedback()
    assert (item.request_id, item.label, item.score, item.comment) == (
        rid,
        "misunderstood",
        -0.5,
        "not that",
    )


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"label": "good"}, 400, None),
        ({"request_id": "x", "score": 2}, 400, "score"),
        ({"request_id": "x", "score": True}, 400, "score"),
        ({"request_id": "x", "label": "Not A Word!"}, 400, "label"),
        ({"request_id": "x"}, 400, None),
        ({"request_id": "x", "label": "good", "rating": 5}, 400, "rating"),
        ({"request_id": "nope0000", "label": "good"}, 404, None),
    ],
)
def test_bad_feedback_is_refused_with_a_reason(
    gateway_factory: Factory,
    upstreams: tuple[ScriptedUpstream, ScriptedUpstream],
    body: dict[str, Any],
    status: int,
    param: str | None,
) -> None:
    gw = gateway_factory(config(*upstreams))
    r = gw.post("/v1/feedback", body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param
