"""Prometheus metrics: one registry per gateway, so several gateways can share a process."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from turnout.lifecycle.run import Run

_RATIO_BUCKETS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


UNKNOWN = "unknown"


class Metrics:
    """Labels take only configured names: a client's made-up model name is `unknown`, so no
    client can grow the label set (and every scrape) without bound."""

    def __init__(self, models: Iterable[str] = (), deployments: Iterable[str] = ()) -> None:
        self.models = frozenset(models)
        self.deployments = frozenset(deployments)
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "turnout_requests", "Requests by terminal state", ["model", "outcome"], registry=r
        )
        self.attempts = Counter(
            "turnout_attempts",
            "Upstream attempts by deployment and result (ok, or the failure class)",
            ["model", "deployment", "result"],
            registry=r,
        )
        self.tokens = Counter(
            "turnout_tokens",
            "Tokens across all attempts",
            ["model", "deployment", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "turnout_cost_usd", "Cost across all attempts", ["model", "deployment"], registry=r
        )
        self.latency = Histogram(
            "turnout_request_duration_seconds",
            "Request latency by outcome",
            ["model", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "turnout_time_to_first_token_seconds",
            "Time to first token of streamed answers",
            ["model", "deployment"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stream_events_skipped = Counter(
            "turnout_stream_events_skipped",
            "Unparseable stream events skipped while the stream went on",
            ["deployment"],
            registry=r,
        )
        self.continuations = Counter(
            "turnout_stream_continuations",
            "Broken streams continued from what the client had, by the deployment continuing",
            ["deployment"],
            registry=r,
        )
        self.in_flight = Gauge(
            "turnout_requests_in_flight", "Requests not yet finished", ["model"], registry=r
        )
        self.records_dropped = Gauge(
            "turnout_records_dropped",
            "Records dropped because the write queue was full",
            registry=r,
        )
        self.records_pending = Gauge(
            "turnout_records_pending", "Records waiting to be written", registry=r
        )

        self.length_error = Histogram(
            "turnout_output_length_prediction_log_error",
            "|ln(predicted / actual)| of balanced requests' answer lengths (0.69: off by 2x)",
            ["model"],
            buckets=_RATIO_BUCKETS,
            registry=r,
        )
        self.length_abs_error = Histogram(
            "turnout_output_length_prediction_abs_error_tokens",
            "|predicted - actual| answer length of balanced requests, tokens",
            ["model"],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.scrape_errors = Counter(
            "turnout_backend_scrape_errors",
            "Failed scrapes of a balanced deployment's own /metrics",
            ["deployment"],
            registry=r,
        )
        self.intent_signals = Counter(
            "turnout_intent_signals",
            "Intent signals in requests (rephrase, correction, regenerate, clarification)",
            ["model", "signal"],
            registry=r,
        )
        self.shared_state_up = Gauge(
            "turnout_shared_state_up",
            "1 while the replicas' shared state (Redis) answers, 0 while this gateway works alone",
            registry=r,
        )
        self.shared_state_errors = Counter(
            "turnout_shared_state_errors",
            "Shared-state (Redis) operations that failed and fell back to local state",
            ["operation"],
            registry=r,
        )

    def model(self, name: str) -> str:
        return name if name in self.models else UNKNOWN

    def deployment(self, name: str) -> str:
        return name if name in self.deployments else UNKNOWN

    def observe(self, run: Run) -> None:
        outcome = run.outcome.value if run.outcome else "unfinished"
        model = self.model(run.model)
        self.requests.labels(model, outcome).inc()
        if run.latency_s is not None:
            self.latency.labels(model, outcome).observe(run.latency_s)
        for a in run.attempts:
            dep = self.deployment(a.deployment)
            self.attempts.labels(model, dep, a.error or "ok").inc()
            if a.prompt_tokens:
                self.tokens.labels(model, dep, "prompt").inc(a.prompt_tokens)
            if a.completion_tokens:
                self.tokens.labels(model, dep, "completion").inc(a.completion_tokens)
            if a.cost_usd:
                self.cost.labels(model, dep).inc(a.cost_usd)
            if a.ttft_s is not None:
                self.ttft.labels(model, dep).observe(a.ttft_s)
            if a.events_skipped:
                self.stream_events_skipped.labels(dep).inc(a.events_skipped)
            if a.continuation:
                self.continuations.labels(dep).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
