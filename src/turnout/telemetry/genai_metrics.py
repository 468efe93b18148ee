"""The GenAI client metrics of the conventions, in Prometheus' naming, one observation per call.

OpenTelemetry names map to Prometheus as an OTLP-to-Prometheus bridge maps them: dots become
underscores and the unit `s` a `_seconds` suffix (`{token}` is an annotation and adds none);
attribute names become labels the same way. Every label takes configured values only (the
deployment's model, its provider, turnout's closed failure classes), so the series stay bounded.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Histogram

from turnout.config import DeploymentConfig
from turnout.lifecycle.run import Run
from turnout.telemetry.calls import operation_name, provider_name
from turnout.telemetry.labels import Children

# The bucket boundaries the conventions specify.
_TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, … 67108864
_DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(14))  # 0.01, 0.02, … 81.92
_LABELS = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")


class GenAIMetrics:
    def __init__(
        self, registry: CollectorRegistry, deployments: Mapping[str, DeploymentConfig]
    ) -> None:
        self.deployments = deployments
        self._child = Children()
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Number of input and output tokens used (gen_ai.client.token.usage)",
            [*_LABELS, "gen_ai_token_type"],
            buckets=_TOKEN_BUCKETS,
            registry=registry,
        )
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration (gen_ai.client.operation.duration)",
            [*_LABELS, "error_type"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.time_to_first_chunk = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time to receive the first chunk of a stream"
            " (gen_ai.client.operation.time_to_first_chunk)",
            _LABELS,
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )

    def observe(self, run: Run) -> None:
        op = operation_name(run)
        for a in run.attempts:
            dep = self.deployments.get(a.deployment)
            if dep is None or a.ended is None:
                continue
            labels = (op, provider_name(dep), dep.model)
            # A failed call's usage is known only when it was counted (a broken stream).
            child = self._child
            if a.ok or a.prompt_tokens or a.completion_tokens:
                child(self.token_usage, *labels, "input").observe(a.prompt_tokens)
                child(self.token_usage, *labels, "output").observe(a.completion_tokens)
            error = "" if a.ok else (a.error or "cancelled")
            child(self.duration, *labels, error).observe(a.ended - a.started)
            if a.ttft_s is not None:
                child(self.time_to_first_chunk, *labels).observe(a.ttft_s)
