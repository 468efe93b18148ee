"""The routing decision as a table of scenarios: budgets, prices, tags, sensitivity, capability."""

from __future__ import annotations

import pytest

from turnout.routing.policy import Candidate, RequestFeatures, decide

EDGE = Candidate(
    "edge",
    trusted=True,
    available=True,
    latency_s=1.2,
    cost_usd=0.00001,
    context_window=2048,
    supports_tools=False,
)
CLOUD = Candidate("cloud", trusted=False, available=True, latency_s=0.4, cost_usd=0.0004)
CHEAP_CLOUD = Candidate(
    "cheap-cloud", trusted=False, available=True, latency_s=0.9, cost_usd=0.0001
)
PLAIN = RequestFeatures(prompt_tokens=50)


@pytest.mark.parametrize(
    ("name", "candidates", "req", "objective", "privacy", "order", "rule_words"),
    [
        (
            "no budget: cheapest wins",
            [CLOUD, EDGE],
            PLAIN,
            "cheapest_within_slo",
            "block",
            ("edge", "cloud"),
            "cheapest of 2",
        ),
        (
            "tight budget: only the cloud is fast enough",
            [CLOUD, EDGE],
            RequestFeatures(50, latency_budget_s=0.5),
            "cheapest_within_slo",
            "block",
            ("cloud", "edge"),
            "cheapest of 1 within 500 ms",
        ),
        (
            "budget nobody meets: fastest",
            [CLOUD, EDGE],
            RequestFeatures(50, latency_budget_s=0.1),
            "cheapest_within_slo",
            "block",
            ("cloud", "edge"),
            "none within 100 ms, fastest",
        ),
        (
            "two within budget: the cheaper cloud",
            [CLOUD, CHEAP_CLOUD, EDGE],
            RequestFeatures(50, latency_budget_s=1.0),
            "cheapest_within_slo",
            "block",
            ("cheap-cloud", "cloud", "edge"),
            "cheapest of 2",
        ),
        (
            "fastest",
            [EDGE, CHEAP_CLOUD, CLOUD],
            PLAIN,
            "fastest",
            "block",
            ("cloud", "cheap-cloud", "edge"),
            "fastest",
        ),
        ("local_only", [CLOUD, EDGE], PLAIN, "local_only", "off", ("edge",), "cheapest"),
        ("cloud_only", [CLOUD, EDGE], PLAIN, "cloud_only", "off", ("cloud",), "cheapest"),
        (
            "sensitive + block: the cloud may not see it",
            [CLOUD, EDGE],
            RequestFeatures(50, sensitive={"email": 1}, latency_budget_s=0.5),
            "cheapest_within_slo",
            "block",
            ("edge",),
            "none within 500 ms",
        ),
        (
            "sensitive + redact: the cloud may see placeholders",
            [CLOUD, EDGE],
            RequestFeatures(50, sensitive={"email": 1}, latency_budget_s=0.5),
            "cheapest_within_slo",
            "redact",
            ("cloud", "edge"),
            "cheapest of 1",
        ),
        (
            "sensitive + off: nothing changes",
            [CLOUD, EDGE],
            RequestFeatures(50, sensitive={"email": 1}, latency_budget_s=0.5),
            "cheapest_within_slo",
            "off",
            ("cloud", "edge"),
            "cheapest of 1",
        ),
        (
            "sticky conversation stays local even when redacting",
            [CLOUD, EDGE],
            RequestFeatures(50, sticky_local=True),
            "fastest",
            "redact",
            ("edge",),
            "fastest",
        ),
        (
            "context window too small for the edge",
            [EDGE, CLOUD],
            RequestFeatures(2000, max_output_tokens=500),
            "cheapest_within_slo",
            "block",
            ("cloud",),
            "cheapest of 1",
        ),
        (
            "tools: the edge cannot call them",
            [EDGE, CLOUD],
            RequestFeatures(50, needs_tools=True),
            "cheapest_within_slo",
            "block",
            ("cloud",),
            "cheapest of 1",
        ),
        (
            "breaker open on the cheapest",
            [CLOUD, Candidate("edge", True, False, 1.2, 0.00001)],
            PLAIN,
            "cheapest_within_slo",
            "block",
            ("cloud",),
            "cheapest of 1",
        ),
    ],
)
def test_decision_table(
    name: str,
    candidates: list[Candidate],
    req: RequestFeatures,
    objective: str,
    privacy: str,
    order: tuple[str, ...],
    rule_words: str,
) -> None:
    d = decide(candidates, req, objective, privacy)
    assert d.order == order, name
    assert rule_words in d.rule, (name, d.rule)
    assert d.refusal is None
    left_out = {v.name for v in d.verdicts if not v.allowed}
    assert left_out == {c.name for c in candidates} - set(order)
    assert all(v.reason for v in d.verdicts if not v.allowed)


def test_redact_marks_only_untrusted_deployments() -> None:
    d = decide(
        [CLOUD, EDGE], RequestFeatures(50, sensitive={"payment_card": 2}), "fastest", "redact"
    )
    assert d.redact == frozenset({"cloud"})


def test_sensitive_request_with_only_cloud_deployments_is_blocked() -> None:
    d = decide(
        [CLOUD, CHEAP_CLOUD],
        RequestFeatures(50, sensitive={"us_ssn": 1}),
        "cheapest_within_slo",
        "block",
    )
    assert d.order == () and d.refusal == "blocked"
    assert all("us_ssn×1" in (v.reason or "") for v in d.verdicts)


def test_incapable_everywhere_is_a_rejection_not_a_block() -> None:
    d = decide([EDGE], RequestFeatures(50, needs_tools=True), "cheapest_within_slo", "block")
    assert d.refusal == "incapable"


def test_all_cooling_is_its_own_refusal() -> None:
    down = [Candidate("a", False, False, 0.1, 0.0), Candidate("b", True, False, 0.1, 0.0)]
    assert decide(down, PLAIN, "fastest", "off").refusal == "cooling"


def test_keep_order_ignores_the_ranking() -> None:
    d = decide([CLOUD, EDGE], PLAIN, "fastest", "off", keep_order=True)
    assert d.order == ("cloud", "edge") and d.rule == "configured order"


def test_a_queue_at_the_gate_lengthens_the_prediction() -> None:
    from turnout.routing.estimates import DeploymentEstimate

    est = DeploymentEstimate(remote=False, concurrency=2)
    est.in_flight = 2  # both slots busy: the next one waits for one of them
    _, slots_full = est.predict(16)
    est.queued = 4  # and four more wait at the gate ahead of it
    _, behind_four = est.predict(16)
    assert slots_full["queue_s"] > 0
    assert behind_four["queue_s"] == pytest.approx(5 * slots_full["queue_s"])
