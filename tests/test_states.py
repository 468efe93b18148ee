"""The transition table is the only authority on which state may follow which."""

from __future__ import annotations

import pytest

from turnout.lifecycle.run import Run
from turnout.lifecycle.states import TERMINAL, TRANSITIONS, IllegalTransition, State


def test_a_transition_outside_the_table_raises() -> None:
    run = Run(id="r1", model="m", operation="chat")
    with pytest.raises(IllegalTransition, match="received → completed"):
        run.transition(State.COMPLETED)
    assert run.state is State.RECEIVED and len(run.events) == 1


def test_terminal_states_end_the_run() -> None:
    run = Run(id="r2", model="m", operation="chat")
    run.transition(State.REJECTED, status=400)
    assert run.outcome is State.REJECTED and run.ended is not None
    with pytest.raises(IllegalTransition):
        run.transition(State.ROUTED)


def test_every_live_state_can_be_cancelled_and_can_reach_a_terminal() -> None:
    for state, nexts in TRANSITIONS.items():
        if state in TERMINAL:
            assert not nexts
        else:
            assert State.CANCELLED in nexts
            assert nexts & TERMINAL - {State.CANCELLED}, state


def test_events_carry_attributes_and_increasing_times() -> None:
    run = Run(id="r3", model="m", operation="chat")
    run.transition(State.ROUTED, chosen="a")
    run.transition(State.ATTEMPTING, attempt=1, deployment="a")
    assert run.path == ["received", "routed", "attempting"]
    assert run.events[2].attrs == {"attempt": 1, "deployment": "a"}
    times = [e.at for e in run.events]
    assert times == sorted(times)
