"""The request path's decisions, one rule at a time: a pure function, so no gateway is needed."""

from __future__ import annotations

from typing import Any

from turnout.backends.base import Failure, Operation, UpstreamError
from turnout.config import Backoff, LifecyclePolicy, ModelConfig
from turnout.lifecycle import decide
from turnout.lifecycle.decide import (
    Answered,
    Continue,
    Failed,
    Fallback,
    Finish,
    FleetView,
    Progress,
    Reask,
    Retry,
)
from turnout.lifecycle.decide import (
    Backoff as BackoffStep,
)
from turnout.lifecycle.request import Request
from turnout.lifecycle.states import State

POLICY = LifecyclePolicy(max_attempts=3, backoff=Backoff(base_s=0.2, max_s=5.0))
ORDER = ("a", "b", "c")


def fleet(
    available: tuple[str, ...] = ORDER,
    windows: dict[str, int | None] | None = None,
    prefill: tuple[str, ...] = ORDER,
) -> FleetView:
    return FleetView(
        available=frozenset(available),
        rest_s={d: 0.0 for d in ORDER},
        windows=windows or dict.fromkeys(ORDER),
        prefill=frozenset(prefill),
    )


def err(failure: Failure, status: int | None = None, **kw: Any) -> UpstreamError:
    return UpstreamError(failure, f"upstream {status}: no", status=status, **kw)


def after(failed: Failed, p: Progress | None = None, f: FleetView | None = None) -> Any:
    progress = p or Progress(order=ORDER, attempts=1)
    return decide.after_failure(POLICY, f or fleet(), progress, failed, jitter=0.5)


def test_a_one_off_server_error_is_retried_on_the_same_deployment_first() -> None:
    step = after(Failed("a", err(Failure.SERVER_ERROR, 500)))
    assert isinstance(step, BackoffStep) and step.deployment == "a"
    assert step.why["same_deployment"] is True
    # the second time on `a` it is no longer a one-off: the next deployment, at once
    again = after(
        Failed("a", err(Failure.SERVER_ERROR, 500)),
        Progress(order=ORDER, attempts=2, same_retries={"a": 1}),
    )
    assert isinstance(again, Fallback) and again.deployment == "b"


def test_a_rate_limit_waits_only_when_its_retry_after_fits() -> None:
    fits = after(Failed("a", err(Failure.RATE_LIMITED, 429, retry_after_s=2.0)))
    assert isinstance(fits, BackoffStep) and (fits.deployment, fits.delay_s) == ("a", 2.0)
    too_long = after(Failed("a", err(Failure.RATE_LIMITED, 429, retry_after_s=30.0)))
    assert isinstance(too_long, Fallback) and too_long.deployment == "b"


def test_persistent_failures_and_upstream_refusals_fall_back_at_once() -> None:
    for failure in (Failure.TIMEOUT, Failure.CONNECTION_ERROR, Failure.MALFORMED_RESPONSE):
        step = after(Failed("a", err(failure)))
        assert isinstance(step, Fallback) and step.deployment == "b", failure
    said_no = after(Failed("a", err(Failure.SERVER_ERROR, 500, should_retry=False)))
    assert isinstance(said_no, Fallback)


def test_context_exceeded_goes_only_to_a_larger_window() -> None:
    windows = {"a": 8000, "b": 4000, "c": 32000}
    step = after(Failed("a", err(Failure.CONTEXT_EXCEEDED, 400)), f=fleet(windows=windows))
    assert isinstance(step, Fallback) and step.deployment == "c"
    nowhere = after(
        Failed("c", err(Failure.CONTEXT_EXCEEDED, 400, code="context_length_exceeded")),
        f=fleet(windows=windows),
    )
    assert isinstance(nowhere, Finish) and nowhere.state is State.FAILED_UPSTREAM
    assert nowhere.error is not None and nowhere.error.status == 400
    assert nowhere.error.code == "context_length_exceeded"
    assert nowhere.error.headers["x-should-retry"] == "false"
    assert nowhere.error.headers["x-turnout-failure"] == "context_exceeded"


def test_a_broken_stream_continues_on_the_same_deployment_a_stall_elsewhere() -> None:
    broke = after(Failed("a", err(Failure.BROKEN_STREAM), sent_chars=80, sent_tokens=20))
    assert isinstance(broke, Continue) and broke.deployment == "a"
    assert broke.why["prefix_chars"] == 80 and broke.why["prefix_tokens"] == 20
    stalled = after(Failed("a", err(Failure.TIMEOUT), sent_chars=80, sent_tokens=20))
    assert isinstance(stalled, Continue) and stalled.deployment == "b"


def test_a_stream_is_continued_only_where_it_can_be() -> None:
    none = after(Failed("a", err(Failure.BROKEN_STREAM), sent_chars=5), f=fleet(prefill=()))
    assert isinstance(none, Finish) and none.state is State.FAILED_UPSTREAM
    tools = after(Failed("a", err(Failure.BROKEN_STREAM), sent_chars=5, tool_calls_sent=True))
    assert isinstance(tools, Finish) and "tool call" in tools.why["reason"]


def test_every_deployment_resting_is_a_retry_later() -> None:
    step = after(
        Failed("a", err(Failure.SERVER_ERROR, 500)),
        Progress(order=ORDER, attempts=2, same_retries={"a": 1}),
        fleet(available=()),
    )
    assert isinstance(step, Finish) and step.error is not None
    assert step.error.headers["x-should-retry"] == "true"


def answered(finish: str | None, text: str = "hi", streamed: bool = False) -> Answered:
    message = {"role": "assistant", "content": text}
    return Answered("a", message, text, finish, 10, 20, streamed=streamed)


def request(**body: Any) -> Request:
    return Request.from_openai({"model": "m", "messages": [], **body}, Operation.CHAT)


def judge(req: Request, what: Answered, p: Progress | None = None, **policy: Any) -> Any:
    pol = LifecyclePolicy(**{"max_attempts": 3, **policy})
    model = ModelConfig(name="m", deployments=ORDER, lifecycle=pol)
    return decide.after_answer(
        pol, model, req, fleet(), p or Progress(order=ORDER, attempts=1), what
    )


def test_the_clients_max_tokens_is_a_ceiling_truncation_never_raises() -> None:
    step = judge(request(max_tokens=24), answered("length"), on_truncation="retry")
    assert isinstance(step, Finish) and step.state is State.TRUNCATED
    assert step.why["ceiling"] == 24
    own = judge(request(), answered("length"), on_truncation="retry")
    assert isinstance(own, Retry) and own.max_tokens == 40  # twice what it used


def test_a_streamed_answer_is_judged_by_the_same_rules_without_taking_anything_back() -> None:
    cut = judge(request(), answered("length", streamed=True), on_truncation="retry")
    assert isinstance(cut, Finish) and cut.why["policy"] == "streamed"
    schema = {"type": "json_object"}
    bad = answered("stop", text="not json")
    reask = judge(request(response_format=schema), bad)
    assert isinstance(reask, Reask)
    streamed = judge(request(response_format=schema), answered("stop", "not json", True))
    assert isinstance(streamed, Finish) and streamed.state is State.INVALID_OUTPUT
