"""The PostgreSQL record's schema, as ordered migrations recorded in `schema_version`.

The requests table is partitioned by day on `started` (unix seconds), so retention drops whole
days; partitions are made as time reaches them (`pg_partitions`). The other tables are small
beside it and stay plain. Ids and names sort as bytes (`COLLATE "C"`), as in SQLite, whatever
the database's locale: id prefixes and cursors depend on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from turnout.store.location import describe
from turnout.store.versions import Applied, too_new

C = 'COLLATE "C"'
# Any two processes migrating one database take turns (a transaction-scoped advisory lock).
LOCK_KEY = 0x7475726E6F7574  # "turnout"

V1 = f"""
CREATE TABLE requests (
    id text {C} NOT NULL,
    started double precision NOT NULL,
    ended double precision,
    model text {C} NOT NULL,
    operation text NOT NULL,
    stream boolean NOT NULL,
    outcome text NOT NULL,
    http_status bigint,
    deployments json NOT NULL,
    attempts integer NOT NULL,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cost_usd double precision NOT NULL,
    ttft_ms double precision,
    latency_ms double precision,
    error text,
    events json NOT NULL,
    attempt_log json NOT NULL,
    request_body json,
    response_body json,
    migration json,
    wire text,
    key_id text,
    tenant text,
    attrs json,
    PRIMARY KEY (id, started)
) PARTITION BY RANGE (started);
CREATE INDEX requests_started ON requests (started);
CREATE INDEX requests_outcome ON requests (outcome, started);
CREATE INDEX requests_model ON requests (model, started);
CREATE INDEX requests_key ON requests (key_id, started);
CREATE INDEX requests_prefix ON requests (((attrs->>'conversation_prefix')), started);
CREATE INDEX requests_shadow_of ON requests (((migration->>'shadow_of')))
    WHERE (migration->>'shadow_of') IS NOT NULL;
CREATE TABLE migration_events (
    seq bigserial PRIMARY KEY,
    at double precision NOT NULL,
    model text {C} NOT NULL,
    mode text NOT NULL,
    candidate text {C} NOT NULL,
    kind text NOT NULL,
    stage integer,
    percent double precision,
    detail json
);
CREATE INDEX migration_events_model ON migration_events (model, mode, at);
CREATE TABLE feedback (
    id text {C} PRIMARY KEY,
    at double precision NOT NULL,
    request_id text,
    conversation_id text,
    score double precision,
    label text,
    comment text,
    key_id text
);
CREATE INDEX feedback_at ON feedback (at);
CREATE INDEX feedback_request ON feedback (request_id);
CREATE SEQUENCE client_keys_revision;
CREATE TABLE client_keys (
    id text {C} PRIMARY KEY,
    name text NOT NULL,
    secret_sha256 text NOT NULL UNIQUE,
    display text NOT NULL,
    created double precision NOT NULL,
    models json NOT NULL,
    rpm bigint,
    tpm bigint,
    budget_usd double precision,
    budget_period_s double precision,
    alert_at double precision,
    expires double precision,
    tenant text,
    priority text NOT NULL,
    metadata json NOT NULL,
    revoked double precision,
    revision bigint NOT NULL
);
CREATE INDEX client_keys_revision_idx ON client_keys (revision);
CREATE TABLE client_key_spend (
    key_id text {C} NOT NULL,
    period_start double precision NOT NULL,
    usd double precision NOT NULL,
    tokens bigint NOT NULL,
    requests bigint NOT NULL,
    PRIMARY KEY (key_id, period_start)
);
CREATE TABLE client_key_events (
    seq bigserial PRIMARY KEY,
    at double precision NOT NULL,
    key_id text {C} NOT NULL,
    kind text NOT NULL,
    detail json
);
CREATE INDEX client_key_events_key ON client_key_events (key_id, at);
CREATE TABLE fingerprint_runs (
    id text {C} PRIMARY KEY,
    deployment text {C} NOT NULL,
    suite text NOT NULL,
    suite_digest text NOT NULL,
    started double precision NOT NULL,
    ended double precision,
    sampling json NOT NULL,
    cost_usd double precision NOT NULL,
    samples integer NOT NULL,
    note text NOT NULL,
    suite_spec json
);
CREATE INDEX fingerprint_runs_deployment ON fingerprint_runs (deployment, started);
CREATE TABLE fingerprint_samples (
    run_id text {C} NOT NULL,
    seq integer NOT NULL,
    probe text NOT NULL,
    kind text NOT NULL,
    text text NOT NULL,
    finish_reason text,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    latency_s double precision,
    model text,
    system_fingerprint text,
    logprobs json,
    token_logprob double precision,
    error text,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE fingerprint_baselines (
    name text {C} PRIMARY KEY,
    run_id text NOT NULL,
    deployment text {C} NOT NULL,
    created double precision NOT NULL
);
CREATE TABLE fingerprint_checks (
    id text {C} PRIMARY KEY,
    at double precision NOT NULL,
    deployment text {C} NOT NULL,
    baseline text NOT NULL,
    run_id text NOT NULL,
    changed boolean NOT NULL,
    min_p double precision NOT NULL,
    verdict json NOT NULL
);
CREATE INDEX fingerprint_checks_deployment ON fingerprint_checks (deployment, at);
CREATE TABLE fingerprint_alarms (
    id text {C} PRIMARY KEY,
    at double precision NOT NULL,
    deployment text {C} NOT NULL,
    kind text NOT NULL,
    message text NOT NULL,
    detail json NOT NULL
);
CREATE INDEX fingerprint_alarms_deployment ON fingerprint_alarms (deployment, at)
"""


def _script(sql: str) -> Callable[[psycopg.Connection], str]:
    def apply(conn: psycopg.Connection) -> str:
        for statement in sql.split(";"):
            if statement.strip():
                conn.execute(statement)  # type: ignore[call-overload]
        return ""

    return apply


# Decisions recorded once: the leader's term (`turnout.store.terms`), and an identity for each
# migration event a decision writes, so that writing it again changes nothing.
V2 = """
CREATE TABLE fleet_term (
    name text PRIMARY KEY, epoch bigint NOT NULL, replica text NOT NULL,
    at double precision NOT NULL
);
ALTER TABLE migration_events ADD COLUMN decision text;
CREATE UNIQUE INDEX migration_events_decision ON migration_events (decision)
"""

MIGRATIONS: tuple[tuple[int, str, Callable[[psycopg.Connection], str]], ...] = (
    (1, "the record's tables", _script(V1)),
    (2, "decisions fenced by the leader's term", _script(V2)),
)
LATEST = MIGRATIONS[-1][0]
VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(version integer PRIMARY KEY, name text NOT NULL, applied double precision NOT NULL)"
)


def version(conn: psycopg.Connection) -> int:
    """The database's schema version; 0 before any."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection, where: str = "") -> list[Applied]:
    """Apply what the database lacks, in one transaction, one process at a time."""
    current = version(conn)
    if current > LATEST:
        raise too_new(where, current, LATEST)
    if current == LATEST:
        return []
    applied: list[Applied] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(VERSION_TABLE)
        current = version(conn)
        for number, name, step in MIGRATIONS:
            if number > current:
                note = step(conn) or ("created" if number == 1 else "")
                conn.execute(
                    "INSERT INTO schema_version (version, name, applied) VALUES (%s, %s, %s)",
                    (number, name, time.time()),
                )
                applied.append(Applied(number, name, note))
    return applied


def migrate_url(url: str) -> list[Applied]:
    from turnout.store.pg_errors import translated

    with translated(url), psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return migrate(conn, describe(url))
