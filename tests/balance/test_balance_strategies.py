"""Balancing strategies on constructed fleet states."""

from __future__ import annotations

import random

from turnout.routing.balance import (
    Ask,
    Flight,
    InstanceState,
    affinity_owner,
    completion_s,
    pick,
    rank,
)
from turnout.routing.rates import ServiceRates
from turnout.routing.signals import Signal
from turnout.routing.tracker import LoadTracker

NOW = 100.0


def known_rates() -> ServiceRates:
    # 10 ms a step plus 1 ms per request in the batch; prefill 10k tokens/s.
    return ServiceRates(prefill_s_per_token=1e-4, fixed=lambda b, kv: 0.010 + 0.001 * b)


def instance(name: str, *remaining: int, max_batch: int | None = None) -> InstanceState:
    """An instance with requests in flight, each `remaining` tokens from its (known) end."""
    inst = InstanceState(name, known_rates(), max_batch=max_batch)
    for k, left in enumerate(remaining):
        inst.flights[f"{name}-{k}"] = Flight(
            prompt_tokens=100,
            points=(float(left + 10),),
            cap=None,
            started=NOW - 1,
            first_token_at=NOW - 0.5,
            generated=10,
        )
    return inst


def test_round_robin_takes_turns() -> None:
    fleet = [instance("a"), instance("b"), instance("c")]
    rng = random.Random(0)
    chosen = [pick("round_robin", fleet, Ask(10), now=NOW, rng=rng, turn=t) for t in range(6)]
    assert chosen == ["a", "b", "c", "a", "b", "c"]


def test_least_requests_picks_the_emptiest_and_ties_go_round() -> None:
    fleet = [instance("a", 5, 5), instance("b", 5), instance("c", 5)]
    rng = random.Random(0)
    first = pick("least_requests", fleet, Ask(10), now=NOW, rng=rng, turn=1)
    second = pick("least_requests", fleet, Ask(10), now=NOW, rng=rng, turn=2)
    assert {first, second} == {"b", "c"}


def test_power_of_two_takes_the_less_loaded_of_its_two_draws() -> None:
    fleet = [instance("a", 5, 5, 5), instance("b"), instance("c", 5, 5)]
    for seed in range(20):
        ranking = rank("power_of_two", fleet, Ask(10), now=NOW, rng=random.Random(seed))
        first, second = ranking.order[:2]
        loads = {"a": 3, "b": 0, "c": 2}
        assert loads[first] <= loads[second]
        assert ranking.chosen != "a"  # the busiest never wins a draw


def test_least_work_avoids_the_instance_busy_with_a_long_generation() -> None:
    # One request with 4,000 tokens to go against two that end in a few tokens:
    # least_requests prefers the first; the work still to come says otherwise.
    long_one = instance("long", 4000)
    two_short = instance("short", 3, 4)
    fleet = [long_one, two_short]
    ask = Ask(prompt_tokens=50, output=500)
    rng = random.Random(0)
    assert pick("least_requests", fleet, ask, now=NOW, rng=rng) == "long"
    assert pick("least_work", fleet, ask, now=NOW, rng=rng) == "short"


def test_least_work_predicts_completion_from_prefill_and_decode_rates() -> None:
    idle = instance("idle")
    ask = Ask(prompt_tokens=1000, output=100)
    # 1000 tokens at 10k/s, then 100 steps of 11 ms alone in the batch.
    assert abs(completion_s(idle, ask, NOW) - (0.1 + 100 * 0.011)) < 1e-9


def test_least_work_waits_for_a_slot_when_the_batch_is_full() -> None:
    full = instance("full", 1000, max_batch=1)
    free = instance("free", 1000, 1000)
    rng = random.Random(0)
    assert pick("least_work", [full, free], Ask(10, 50), now=NOW, rng=rng) == "free"


def test_least_work_ties_go_round() -> None:
    fleet = [instance("a"), instance("b")]
    rng = random.Random(0)
    chosen = {pick("least_work", fleet, Ask(10), now=NOW, rng=rng, turn=t) for t in range(2)}
    assert chosen == {"a", "b"}


def test_unhealthy_instances_are_left_out_and_none_is_no_choice() -> None:
    a, b = instance("a"), instance("b", 100, 100, 100)
    a.healthy = False
    rng = random.Random(0)
    for strategy in ("round_robin", "least_requests", "power_of_two", "least_work"):
        assert rank(strategy, [a, b], Ask(10), now=NOW, rng=rng).order == ("b",)
    b.healthy = False
    assert pick("least_work", [a, b], Ask(10), now=NOW, rng=rng) is None


def test_a_fresh_signal_counts_requests_the_gateway_did_not_send() -> None:
    a, b = instance("a", 5), instance("b", 5, 5)
    a.signal = Signal(at=NOW - 1, running=6, waiting=2)  # others' traffic on a
    rng = random.Random(0)
    assert pick("least_requests", [a, b], Ask(10), now=NOW, rng=rng) == "b"
    assert pick("least_work", [a, b], Ask(10), now=NOW, rng=rng) == "b"


def test_a_stale_signal_is_ignored() -> None:
    a, b = instance("a", 5), instance("b", 5, 5)
    a.signal = Signal(at=NOW - 60, running=6, waiting=2)
    rng = random.Random(0)
    assert pick("least_requests", [a, b], Ask(10), now=NOW, rng=rng, stale_after_s=10) == "a"


def test_affinity_keeps_a_prefix_on_one_instance() -> None:
    fleet = [instance(n) for n in "abcd"]
    owners = {affinity_owner(fleet, "system-prompt-7", NOW) for _ in range(5)}
    assert len(owners) == 1
    spread = {affinity_owner(fleet, f"system-prompt-{k}", NOW) for k in range(40)}
    assert len(spread) == 4  # different prefixes land on different instances


def test_affinity_never_overloads_the_owner() -> None:
    fleet = [instance(n) for n in "abcd"]
    owner = affinity_owner(fleet, "hot", NOW)
    busy = next(i for i in fleet if i.name == owner)
    for k in range(6):
        busy.flights[f"x{k}"] = Flight(100, (50.0,), None, NOW)
    # 6 in flight, bound 1.25 × (6 + 1) / 4 → 3: the hot prefix spills to the next instance.
    assert affinity_owner(fleet, "hot", NOW) != owner


def test_affinity_credits_the_owner_with_the_cached_prefix() -> None:
    fleet = [instance("a"), instance("b")]
    owner = affinity_owner(fleet, "sys", NOW)
    ask = Ask(prompt_tokens=5000, output=10, prefix_key="sys", prefix_tokens=4800)
    rng = random.Random(0)
    for turn in range(4):
        ranking = rank("least_work", fleet, ask, now=NOW, rng=rng, turn=turn, affinity=True)
        assert ranking.chosen == owner


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_tracker_follows_a_request_from_start_to_finish() -> None:
    clock = Clock()
    tracker = LoadTracker(["a", "b"], clock=clock, rng=random.Random(1))
    ask = Ask(prompt_tokens=400, output=100)
    name = tracker.pick(ask)
    assert name is not None
    tracker.start(name, "req-1", ask)
    assert len(tracker.instances[name].flights) == 1
    clock.t = 0.1
    tracker.first_token("req-1")
    for _ in range(99):
        clock.t += 0.01
        tracker.tokens("req-1")
    assert tracker.instances[name].flights["req-1"].generated == 100
    tracker.finish("req-1", output_tokens=100)
    assert tracker.instances[name].flights == {}
    rates = tracker.instances[name].rates
    assert abs(rates.prefill_tps - 4000) < 1  # 400 tokens in 0.1 s
    assert rates.step.count == 1


def test_tracker_learns_that_one_instance_decodes_slower() -> None:
    clock = Clock()
    tracker = LoadTracker(["fast", "slow"], clock=clock, rng=random.Random(1))
    for k in range(30):
        for name, step in (("fast", 0.01), ("slow", 0.05)):
            key = f"{name}-{k}"
            tracker.start(name, key, Ask(100, 200))
            clock.t += 0.01
            tracker.first_token(key)
            clock.t += 199 * step
            tracker.finish(key, output_tokens=200)
    fast, slow = (tracker.instances[n].rates.step_s(1, 300) for n in ("fast", "slow"))
    assert slow > 3 * fast
    assert tracker.pick(Ask(100, 200), strategy="least_work") == "fast"


def test_an_instance_that_disappears_and_returns_keeps_what_was_learned() -> None:
    clock = Clock()
    tracker = LoadTracker(["a", "b"], clock=clock)
    tracker.instances["a"].rates.observe_prefill(1000, 0.5)
    tracker.start("a", "lost", Ask(100))
    tracker.remove("a")
    assert tracker.pick(Ask(10)) == "b"
    tracker.finish("lost", output_tokens=10)  # its requests are forgotten: a no-op
    tracker.tokens("lost")
    returned = tracker.add("a")
    assert returned.flights == {}
    assert abs(returned.rates.prefill_tps - 2000) < 1e-6


def test_failed_attempts_free_the_instance_but_teach_nothing() -> None:
    clock = Clock()
    tracker = LoadTracker(["a"], clock=clock)
    tracker.start("a", "r", Ask(100))
    clock.t = 1.0
    tracker.finish("r", ok=False)
    assert tracker.instances["a"].flights == {}
    assert tracker.instances["a"].rates.step.count == 0


def test_non_streamed_requests_progress_by_time() -> None:
    clock = Clock()
    tracker = LoadTracker(["a"], clock=clock)
    tracker.start("a", "whole", Ask(100, 1000), streamed=False)
    inst = tracker.instances["a"]
    early = completion_s(inst, Ask(10, 10), clock.t)
    clock.t = 5.0
    later = completion_s(inst, Ask(10, 10), clock.t)
    assert later < early  # the request it shares steps with is assumed to have moved on
