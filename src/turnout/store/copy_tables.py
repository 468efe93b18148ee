"""Each table of the record as `turnout store copy` moves it: its columns, in the order the
destination should receive its rows. Both databases use the same column names."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    order: str  # an ORDER BY that keeps the order rows of one instant were written in
    booleans: tuple[str, ...] = ()  # integers in SQLite, booleans in PostgreSQL


def _cols(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(","))


TABLES = (
    Table(
        "requests",
        _cols(
            "id, started, ended, model, operation, stream, outcome, http_status, deployments, "
            "attempts, prompt_tokens, completion_tokens, cost_usd, ttft_ms, latency_ms, error, "
            "events, attempt_log, request_body, response_body, migration, wire, key_id, "
            "tenant, attrs"
        ),
        "started, id",
        booleans=("stream",),
    ),
    Table(
        "migration_events",
        _cols("at, model, mode, candidate, kind, stage, percent, detail, decision"),
        "{seq}",
    ),
    Table(
        "feedback",
        _cols("id, at, request_id, conversation_id, score, label, comment, key_id"),
        "at, id",
    ),
    Table(
        "client_keys",
        _cols(
            "id, name, secret_sha256, display, created, models, rpm, tpm, budget_usd, "
            "budget_period_s, alert_at, expires, tenant, priority, metadata, revoked, revision"
        ),
        "revision",
    ),
    Table(
        "client_key_spend",
        _cols("key_id, period_start, usd, tokens, requests"),
        "key_id, period_start",
    ),
    Table("client_key_events", _cols("at, key_id, kind, detail"), "{seq}"),
    Table(
        "fingerprint_runs",
        _cols(
            "id, deployment, suite, suite_digest, started, ended, sampling, cost_usd, samples, "
            "note, suite_spec"
        ),
        "started, id",
    ),
    Table(
        "fingerprint_samples",
        _cols(
            "run_id, seq, probe, kind, text, finish_reason, prompt_tokens, completion_tokens, "
            "latency_s, model, system_fingerprint, logprobs, token_logprob, error"
        ),
        "run_id, seq",
    ),
    Table("fingerprint_baselines", _cols("name, run_id, deployment, created"), "name"),
    Table(
        "fingerprint_checks",
        _cols("id, at, deployment, baseline, run_id, changed, min_p, verdict"),
        "at, id",
        booleans=("changed",),
    ),
    Table("fingerprint_alarms", _cols("id, at, deployment, kind, message, detail"), "at, id"),
)
