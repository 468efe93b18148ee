"""The simulator against queueing theory: Little's law and the M/M/1 mean wait."""

from __future__ import annotations

import math
import random

from turnout.routing.length import LengthFeatures
from turnout.sim.fleet import SimConfig, Simulation, simulate
from turnout.sim.report import littles_law, summarize
from turnout.sim.timing import Profile, preset
from turnout.sim.workload import SimRequest, capacity_rps, generate, workload

STEP_S = 0.001
MEAN_TOKENS = 1000  # decode tokens; service ≈ exponential with mean 1 s


def mm1_requests(rate: float, n: int, seed: int) -> list[SimRequest]:
    rng = random.Random(seed)
    t = 0.0
    out = []
    for i in range(n):
        t += rng.expovariate(rate)
        tokens = 1 + math.floor(rng.expovariate(1 / MEAN_TOKENS))  # first token is free
        out.append(SimRequest(i, t, 1, tokens, LengthFeatures("mm1")))
    return out


def test_one_instance_batch_of_one_reproduces_the_mm1_mean_wait() -> None:
    # No prefill cost, one request at a time, a constant step: an M/M/1 queue (geometric
    # service in 1 ms steps, which the exact M/G/1 formula below accounts for).
    profile = Profile("mm1", 1e12, 0.0, STEP_S, 0.0, 0.0, 1, 10**9)
    rate = 0.3
    # One fixed seed: the run is deterministic; at this length its sampling error is ~2%.
    result = simulate(
        SimConfig([profile], strategy="round_robin", warmup=0.05), mm1_requests(rate, 30_000, 0)
    )
    q = math.exp(-1 / MEAN_TOKENS)
    es = STEP_S * q / (1 - q)
    es2 = STEP_S**2 * q * (1 + q) / (1 - q) ** 2
    rho = rate * es
    analytic = rate * es2 / (2 * (1 - rho))  # Pollaczek–Khinchine; ρ/(μ−λ) for exponential
    measured = summarize(result)["ttft_mean_s"]
    assert abs(measured - analytic) / analytic < 0.04, (measured, analytic)


def test_littles_law_holds_on_a_fleet_run() -> None:
    w = workload("mixed")
    profiles = [preset("dense-8b-l4")] * 3
    reqs = generate(w, 0.8 * capacity_rps(w, profiles), 1500, seed=2)
    for strategy in ("least_requests", "least_work"):
        result = simulate(SimConfig(profiles, strategy=strategy), reqs)
        lq, lam_w = littles_law(result)
        assert abs(lq - lam_w) / lam_w < 1e-6
        assert all(r.end >= r.first_token >= r.arrival for r in result.all_requests)


def test_every_request_completes_with_every_strategy() -> None:
    w = workload("mixed")
    profiles = [preset("cpu-small")] * 2
    reqs = generate(w, 0.9 * capacity_rps(w, profiles), 400, seed=5)
    for strategy in ("round_robin", "least_requests", "power_of_two", "least_work", "oracle"):
        result = simulate(SimConfig(profiles, strategy=strategy), reqs)
        assert all(not math.isnan(r.end) for r in result.all_requests)
        assert {r.instance for r in result.all_requests} == {"i0", "i1"}


def test_a_full_kv_cache_preempts_and_the_preempted_request_still_finishes() -> None:
    tiny = Profile("tiny-kv", 10_000, 0.0, 0.01, 0.0, 0.0, 8, 3_000)
    reqs = [SimRequest(i, 0.001 * i, 500, 600, LengthFeatures("kv")) for i in range(4)]
    sim = Simulation(SimConfig([tiny], strategy="round_robin"))
    result = sim.run(reqs)
    assert sim.instances[0].preemptions > 0
    assert all(r.end > r.first_token for r in result.all_requests)


def test_the_oracle_beats_round_robin_on_a_mixed_fleet() -> None:
    w = workload("mixed")
    profiles = [preset("dense-8b-h100"), preset("dense-8b-l4")]
    reqs = generate(w, 0.8 * capacity_rps(w, profiles), 800, seed=3)
    rr = summarize(simulate(SimConfig(profiles, strategy="round_robin"), reqs))
    oracle = summarize(simulate(SimConfig(profiles, strategy="oracle"), reqs))
    assert oracle["latency_mean_s"] < rr["latency_mean_s"]
