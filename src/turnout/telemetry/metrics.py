"""Prometheus metrics: one registry per gateway, so several gateways can share a process."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from turnout.config import DeploymentConfig
from turnout.lifecycle.run import Run
from turnout.telemetry.genai_metrics import GenAIMetrics
from turnout.telemetry.labels import Children

_RATIO_BUCKETS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


UNKNOWN = "unknown"
# Set by `turnout serve --workers N` for its workers: each keeps its values in files there.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """Labels take only configured names: a client's made-up model name is `unknown`, so no
    client can grow the label set (and every scrape) without bound."""

    def __init__(
        self, models: Iterable[str] = (), deployments: Mapping[str, DeploymentConfig] | None = None
    ) -> None:
        self.models = frozenset(models)
        self.deployments = frozenset(deployments or ())
        self.keys: set[str] = set()  # client key ids the store holds: the only key labels
        self._child = Children()
        r = self.registry = CollectorRegistry()
        self.genai = GenAIMetrics(r, deployments or {})
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
            "turnout_requests_in_flight",
            "Requests not yet finished",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.records_dropped = Counter(
            "turnout_records_dropped",
            "Records dropped because the write queue was full or the store failed",
            registry=r,
        )
        self._dropped_seen = 0
        self.records_pending = Gauge(
            "turnout_records_pending",
            "Records waiting to be written",
            registry=r,
            multiprocess_mode="livesum",
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
            multiprocess_mode="livemin",  # of several workers: 0 while any one works alone
        )
        self.shared_state_errors = Counter(
            "turnout_shared_state_errors",
            "Shared-state (Redis) operations that failed and fell back to local state",
            ["operation"],
            registry=r,
        )

        self.key_requests = Counter(
            "turnout_key_requests",
            "Requests by client key id and terminal state",
            ["key", "outcome"],
            registry=r,
        )
        self.key_cost = Counter(
            "turnout_key_cost_usd", "Spend by client key id, every attempt", ["key"], registry=r
        )
        self.key_tokens = Counter(
            "turnout_key_tokens", "Tokens by client key id, every attempt", ["key"], registry=r
        )
        self.key_budget_alerts = Counter(
            "turnout_key_budget_alerts",
            "Soft budget alerts (a key's spend crossed its alert_at), once per budget period",
            ["key"],
            registry=r,
        )

    def key(self, key_id: str | None) -> str:
        return key_id if key_id is not None and key_id in self.keys else UNKNOWN

    def observe_key(self, run: Run, tokens: int, cost_usd: float) -> None:
        key = self.key(run.key_id)
        outcome = run.outcome.value if run.outcome else "unfinished"
        self._child(self.key_requests, key, outcome).inc()
        if cost_usd:
            self._child(self.key_cost, key).inc(cost_usd)
        if tokens:
            self._child(self.key_tokens, key).inc(tokens)

    def model(self, name: str) -> str:
        return name if name in self.models else UNKNOWN

    def deployment(self, name: str) -> str:
        return name if name in self.deployments else UNKNOWN

    def observe(self, run: Run) -> None:
        outcome = run.outcome.value if run.outcome else "unfinished"
        model = self.model(run.model)
        child = self._child
        child(self.requests, model, outcome).inc()
        if run.latency_s is not None:
            child(self.latency, model, outcome).observe(run.latency_s)
        for a in run.attempts:
            dep = self.deployment(a.deployment)
            child(self.attempts, model, dep, a.error or "ok").inc()
            if a.prompt_tokens:
                child(self.tokens, model, dep, "prompt").inc(a.prompt_tokens)
            if a.completion_tokens:
                child(self.tokens, model, dep, "completion").inc(a.completion_tokens)
            if a.cost_usd:
                child(self.cost, model, dep).inc(a.cost_usd)
            if a.ttft_s is not None:
                child(self.ttft, model, dep).observe(a.ttft_s)
            if a.events_skipped:
                child(self.stream_events_skipped, dep).inc(a.events_skipped)
            if a.continuation:
                child(self.continuations, dep).inc()
        self.genai.observe(run)

    def records_dropped_total(self, total: int) -> None:
        """Catch the counter up with the writer's running count of dropped records."""
        if total > self._dropped_seen:
            self.records_dropped.inc(total - self._dropped_seen)
            self._dropped_seen = total

    def render(self) -> bytes:
        shared = os.environ.get(MULTIPROCESS_DIR)
        if not shared:
            return generate_latest(self.registry)
        # Workers of one `turnout serve --workers N`: whichever is scraped answers for them all.
        registry = CollectorRegistry()
        MultiProcessCollector(registry, shared)
        return generate_latest(registry)
