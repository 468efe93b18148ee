"""Reading a config file: YAML in, typed `Config` out, or a `ConfigError` that says where."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import yaml

from turnout.config.fingerprint import watch_settings
from turnout.config.intent import intent_settings
from turnout.config.migration import canary_config, shadow_config
from turnout.config.reader import ConfigError, _kind, _Reader
from turnout.config.schema import (
    ANTHROPIC_BASE_URL,
    ANTHROPIC_VERSION,
    AUTH_MODES,
    BALANCE_STRATEGIES,
    DEPLOYMENT_APIS,
    DEPLOYMENT_KINDS,
    INVALID_OUTPUT_POLICIES,
    OBJECTIVES,
    PRIVACY_MODES,
    PROTECTABLE,
    RECORD_BODIES,
    ROUTINGS,
    TRUNCATION_POLICIES,
    AuthConfig,
    Backoff,
    Budget,
    CascadeCheck,
    Config,
    Cooldown,
    DeploymentConfig,
    LifecyclePolicy,
    ModelConfig,
    Price,
    PrivacyConfig,
    Retention,
    ServerConfig,
    StateConfig,
    StoreConfig,
    TelemetryConfig,
    Tenant,
    Timeouts,
    default_config,
)


def load_config(path: str | os.PathLike[str]) -> Config:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            source, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigError(source, "", exc.strerror or str(exc)) from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<string>") -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, "", f"invalid YAML: {where}{problem}") from None
    if data is None:
        data = {}
    root = _Reader(source, data)
    server = _server(root.child("server"))
    store = _store(root.child("store"))
    telemetry = _telemetry(root.child("telemetry"))
    state = _state(root.child("state"))
    privacy = _privacy(root.child("privacy"))
    tenants = _tenants(root.child("tenants"))
    deployments = _deployments(root.child("deployments"))
    models = _models(root.child("models"), deployments)
    if not deployments and not models:
        base = default_config()
        deployments, models = base.deployments, base.models
    fingerprint = watch_settings(root.child("fingerprint"), deployments)
    auth = _auth(root.child("auth"))
    root.done()
    return Config(
        server,
        store,
        telemetry,
        deployments,
        models,
        privacy,
        tenants,
        source,
        state,
        fingerprint=fingerprint,
        auth=auth,
    )


def _server(r: _Reader) -> ServerConfig:
    d = ServerConfig()
    port = r.number("port", d.port, minimum=0, integer=True)
    if port > 65535:
        raise r.error(f"must be a TCP port (0–65535), got {port}", "port")
    cfg = ServerConfig(
        host=r.get("host", str, d.host),
        port=port,
        max_body_bytes=r.number("max_body_bytes", d.max_body_bytes, minimum=1, integer=True),
        header_read_timeout_s=_seconds(r, "header_read_timeout_s", d.header_read_timeout_s),
        body_read_timeout_s=_seconds(r, "body_read_timeout_s", d.body_read_timeout_s),
        keepalive_timeout_s=_seconds(r, "keepalive_timeout_s", d.keepalive_timeout_s),
        max_header_bytes=r.number(
            "max_header_bytes", d.max_header_bytes, minimum=1024, integer=True
        ),
        max_connections=r.number("max_connections", d.max_connections, minimum=1, integer=True),
        ui=r.get("ui", bool, d.ui),
        workers=r.number("workers", d.workers, minimum=1, integer=True),
    )
    r.done()
    return cfg


def _seconds(r: _Reader, key: str, default: float) -> float:
    value: float = r.number(key, default, minimum=0.1)
    if not math.isfinite(value):
        raise r.error(f"must be a finite number of seconds, got {value}", key)
    return value


def _store(r: _Reader) -> StoreConfig:
    d = StoreConfig()
    url = r.get("url", str, d.url)
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        # Only the scheme is quoted: the URL may hold a password.
        scheme = url.partition("://")[0] if "://" in url else url[:20]
        raise r.error(
            f"unsupported store URL (scheme {scheme!r}); expected sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
            "url",
        )
    cfg = StoreConfig(
        url=url,
        record_bodies=r.choice("record_bodies", RECORD_BODIES, d.record_bodies),
        flush_interval_s=r.number("flush_interval_s", d.flush_interval_s, minimum=0.001),
        queue_size=r.number("queue_size", d.queue_size, minimum=1, integer=True),
        retention=_retention(r.child("retention")),
    )
    r.done()
    return cfg


def _retention(r: _Reader) -> Retention:
    d = Retention()
    max_bytes = _size(r, "max_bytes", d.max_bytes)
    if 0 < max_bytes < MIN_STORE_BYTES:
        raise r.error(f"must be 0 (no limit) or at least {MIN_STORE_BYTES} bytes", "max_bytes")
    cfg = Retention(
        max_age_days=r.number("max_age_days", d.max_age_days, minimum=0),
        max_bytes=max_bytes,
        check_s=r.number("check_s", d.check_s, minimum=0.01),
    )
    r.done()
    return cfg


MIN_STORE_BYTES = 64 * 1024  # below this the schema and one large record do not fit
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def _size(r: _Reader, key: str, default: int) -> int:
    """A byte count: an integer, or a number with a unit (`512MiB`, `1GiB`, `2GB`)."""
    value = r.get(key, (int, str), default)
    if isinstance(value, int):
        if value < 0:
            raise r.error(f"must be ≥ 0, got {value}", key)
        return value
    m = _SIZE.fullmatch(value)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise r.error(f"expected a size such as 1073741824, 512MiB or 1GiB; got {value!r}", key)
    return int(float(m.group(1)) * _UNITS[unit])


def _auth(r: _Reader) -> AuthConfig:
    d = AuthConfig()
    mode = r.choice("mode", AUTH_MODES, "") if r.has("mode") else None
    env = r.get("admin_key_env", str, d.admin_key_env)
    if not env.replace("_", "").isalnum():
        raise r.error(f"must name an environment variable, got {env!r}", "admin_key_env")
    protect = r.strings("protect") if r.has("protect") else d.protect
    for i, what in enumerate(protect):
        if what not in PROTECTABLE:
            raise r.error(f"must be one of {', '.join(PROTECTABLE)}; got {what!r}", f"protect[{i}]")
    allow = r.get("allow_unauthenticated", bool, d.allow_unauthenticated)
    if allow and mode != "none":
        raise r.error("only with mode: none (keys already authenticate)", "allow_unauthenticated")
    cfg = AuthConfig(
        mode=mode,
        admin_key_env=env,
        protect=protect,
        allow_unauthenticated=allow,
        refresh_s=r.number("refresh_s", d.refresh_s, minimum=0.05),
        spend_flush_s=r.number("spend_flush_s", d.spend_flush_s, minimum=0.05),
    )
    r.done()
    return cfg


def _telemetry(r: _Reader) -> TelemetryConfig:
    d = TelemetryConfig()
    cfg = TelemetryConfig(
        otlp_endpoint=r.get("otlp_endpoint", str, d.otlp_endpoint),
        service_name=r.get("service_name", str, d.service_name),
        capture_content=r.get("capture_content", bool, d.capture_content),
    )
    r.done()
    return cfg


def _state(r: _Reader) -> StateConfig:
    d = StateConfig()
    url = r.get("url", str, None)
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise r.error(f"expected a redis:// URL, got {url!r}", "url")
    cfg = StateConfig(
        url=url,
        lease_ttl_s=r.number("lease_ttl_s", d.lease_ttl_s, minimum=1),
        sync_s=r.number("sync_s", d.sync_s, minimum=0.01),
        leader_ttl_s=r.number("leader_ttl_s", d.leader_ttl_s, minimum=0.5),
    )
    r.done()
    return cfg


def _tenants(r: _Reader) -> dict[str, Tenant]:
    out: dict[str, Tenant] = {}
    for name in r.data:
        t = r.child(name)
        hashes = t.strings("api_key_sha256")
        for i, h in enumerate(hashes):
            if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
                raise t.error(
                    "expected a SHA-256 hex digest (64 lowercase hex characters)",
                    f"api_key_sha256[{i}]",
                )
        out[str(name)] = Tenant(
            name=str(name),
            priority=t.choice("priority", ("high", "normal", "low"), "normal"),
            weight=t.number("weight", 1.0, minimum=0.001),
            api_key_sha256=hashes,
            header_claim=t.get("header_claim", bool, False),
        )
        t.done()
    r.done()
    return out


def _privacy(r: _Reader) -> PrivacyConfig:
    patterns = r.get("patterns", dict, {})
    for name, regex in patterns.items():
        if not isinstance(regex, str):
            raise r.error(
                f"expected a regular expression string, got {_kind(regex)}", f"patterns.{name}"
            )
        try:
            re.compile(regex)
        except re.error as exc:
            raise r.error(f"invalid regular expression: {exc}", f"patterns.{name}") from None
    d = PrivacyConfig()
    cfg = PrivacyConfig(
        patterns={str(k): v for k, v in patterns.items()},
        terms=r.strings("terms"),
        presidio=r.get("presidio", bool, False),
        sticky_conversations=r.number(
            "sticky_conversations", d.sticky_conversations, minimum=0, integer=True
        ),
    )
    r.done()
    return cfg


def _deployments(r: _Reader) -> dict[str, DeploymentConfig]:
    out: dict[str, DeploymentConfig] = {}
    for name in r.data:
        out[str(name)] = _deployment(str(name), r.child(name))
    r.done()
    return out


def _deployment(name: str, r: _Reader) -> DeploymentConfig:
    if not r.has("kind"):
        raise r.error(f"missing; one of {', '.join(DEPLOYMENT_KINDS)}", "kind")
    kind = r.choice("kind", DEPLOYMENT_KINDS, "")
    if not r.has("model"):
        raise r.error("missing: the upstream model name (or, for embedded, a .gguf)", "model")
    base_url = r.get("base_url", str, ANTHROPIC_BASE_URL if kind == "anthropic" else None)
    if kind in ("openai", "anthropic"):
        if base_url is None:
            raise r.error("missing: required for kind openai", "base_url")
        if not base_url.startswith(("http://", "https://")):
            raise r.error(f"must start with http:// or https://, got {base_url!r}", "base_url")
    key_env = r.get("api_key_env", str, None)
    if key_env is not None and not key_env.replace("_", "").isalnum():
        raise r.error(f"must name an environment variable, got {key_env!r}", "api_key_env")
    dd = DeploymentConfig(name=name, kind=kind, model="")
    cfg = DeploymentConfig(
        name=name,
        kind=kind,
        model=r.get("model", str, ""),
        base_url=base_url.rstrip("/") if base_url else None,
        api_key_env=key_env,
        tags=r.strings("tags"),
        max_concurrency=r.number(
            "max_concurrency",
            dd.max_concurrency if kind == "embedded" else None,
            minimum=1,
            integer=True,
        ),
        max_queue=r.number("max_queue", dd.max_queue, minimum=0, integer=True),
        n_ctx=r.number("n_ctx", dd.n_ctx, minimum=64, integer=True),
        price=_price(r.child("price")),
        timeouts=_timeouts(r.child("timeouts")),
        cooldown=_cooldown(r.child("cooldown")),
        context_window=r.number(
            "context_window", dd.n_ctx if kind == "embedded" else None, minimum=1, integer=True
        ),
        supports_tools=r.get("supports_tools", bool, kind != "embedded"),
        # Anthropic's Messages API has no `response_format`: JSON output goes elsewhere.
        supports_structured_output=r.get("supports_structured_output", bool, kind != "anthropic"),
        hourly_usd=r.number("hourly_usd", None, minimum=0),
        rtt_probe_s=r.number("rtt_probe_s", dd.rtt_probe_s, minimum=0),
        metrics_url=_url(r, "metrics_url"),
        scrape_s=r.number("scrape_s", dd.scrape_s, minimum=0),
        pass_fields=r.strings("pass_fields"),
        supports_prefill=r.get("supports_prefill", bool, kind in ("embedded", "anthropic")),
        prefill_fields=tuple(sorted(r.get("prefill_fields", dict, {}).items())),
        anthropic_version=_anthropic_version(r, kind),
        api=_api(r, kind),
    )
    r.done()
    return cfg


def _anthropic_version(r: _Reader, kind: str) -> str:
    version = r.get("anthropic_version", str, ANTHROPIC_VERSION)
    if r.has("anthropic_version") and kind != "anthropic":
        raise r.error(f"only for kind anthropic (this one is {kind})", "anthropic_version")
    if not version.strip() or len(version) > 64:
        raise r.error(f"must be a version such as 2023-06-01, got {version!r}", "anthropic_version")
    return version


def _api(r: _Reader, kind: str) -> str:
    if not r.has("api"):
        return "chat"
    if kind != "openai":
        raise r.error(f"only for kind openai (this deployment is kind {kind})", "api")
    return r.choice("api", DEPLOYMENT_APIS, "chat")


def _url(r: _Reader, key: str) -> str | None:
    url = r.get(key, str, None)
    if url is not None and not url.startswith(("http://", "https://")):
        raise r.error(f"must start with http:// or https://, got {url!r}", key)
    return url


def _price(r: _Reader) -> Price:
    cfg = Price(
        input_per_mtok=r.number("input_per_mtok", 0.0, minimum=0),
        output_per_mtok=r.number("output_per_mtok", 0.0, minimum=0),
    )
    r.done()
    return cfg


def _timeouts(r: _Reader) -> Timeouts:
    d = Timeouts()
    cfg = Timeouts(
        connect_s=r.number("connect_s", d.connect_s, minimum=0.001),
        first_token_s=r.number("first_token_s", d.first_token_s, minimum=0.001),
        idle_s=r.number("idle_s", d.idle_s, minimum=0.001),
        total_s=r.number("total_s", d.total_s, minimum=0.001),
    )
    r.done()
    return cfg


def _cooldown(r: _Reader) -> Cooldown:
    d = Cooldown()
    cfg = Cooldown(
        failures=r.number("failures", d.failures, minimum=1, integer=True),
        seconds=r.number("seconds", d.seconds, minimum=0),
        probe_after_s=r.number("probe_after_s", d.probe_after_s, minimum=0),
    )
    r.done()
    return cfg


def _models(r: _Reader, deployments: dict[str, DeploymentConfig]) -> dict[str, ModelConfig]:
    out: dict[str, ModelConfig] = {}
    for name in r.data:
        m = r.child(name)
        names = m.strings("deployments")
        if not names:
            raise m.error("needs at least one deployment", "deployments")
        for i, dep in enumerate(names):
            if dep not in deployments:
                known = ", ".join(sorted(deployments)) or "none defined"
                raise m.error(f"unknown deployment {dep!r} (known: {known})", f"deployments[{i}]")
        routing = m.choice("routing", ROUTINGS, "ordered")
        if m.has("balance") and routing != "balanced":
            raise m.error(f"only for routing: balanced (this model routes {routing})", "balance")
        balance = m.choice("balance", BALANCE_STRATEGIES, "least_work")
        out[str(name)] = ModelConfig(
            name=str(name),
            deployments=names,
            routing=routing,
            lifecycle=_lifecycle(m.child("lifecycle")),
            objective=m.choice("objective", OBJECTIVES, "cheapest_within_slo"),
            # Placement by policy is where privacy matters most: it fails closed by default.
            # Balanced instances are copies of one deployment: no more private than each other.
            privacy=_privacy_mode(m, "off" if routing in ("ordered", "balanced") else "block"),
            latency_budget_ms=m.number("latency_budget_ms", None, minimum=1),
            deadline_ms=m.number("deadline_ms", None, minimum=1),
            cascade=_cascade(m.child("cascade")),
            balance=balance,
            shadow=shadow_config(m, deployments),
            canary=canary_config(m, deployments, names),
            intent=intent_settings(m.child("intent")),
        )
        m.done()
    r.done()
    return out


def _privacy_mode(r: _Reader, default: str) -> str:
    # YAML 1.1 reads a bare `off` as false; that is what the user meant.
    if r.data.get("privacy") is False:
        r.used.add("privacy")
        return "off"
    return r.choice("privacy", PRIVACY_MODES, default)


def _cascade(r: _Reader) -> CascadeCheck:
    must_match = r.get("must_match", str, None)
    if must_match is not None:
        try:
            re.compile(must_match)
        except re.error as exc:
            raise r.error(f"invalid regular expression: {exc}", "must_match") from None
    cfg = CascadeCheck(
        must_match=must_match, min_chars=r.number("min_chars", 0, minimum=0, integer=True)
    )
    r.done()
    return cfg


def _lifecycle(r: _Reader) -> LifecyclePolicy:
    d = LifecyclePolicy()
    b = r.child("backoff")
    backoff = Backoff(
        base_s=b.number("base_s", d.backoff.base_s, minimum=0),
        max_s=b.number("max_s", d.backoff.max_s, minimum=0),
    )
    b.done()
    g = r.child("budget")
    budget = Budget(
        max_total_tokens=g.number("max_total_tokens", None, minimum=1, integer=True),
        max_cost_usd=g.number("max_cost_usd", None, minimum=0),
    )
    g.done()
    cfg = LifecyclePolicy(
        max_attempts=r.number("max_attempts", d.max_attempts, minimum=1, integer=True),
        backoff=backoff,
        on_truncation=r.choice("on_truncation", TRUNCATION_POLICIES, d.on_truncation),
        on_invalid_output=r.choice(
            "on_invalid_output", INVALID_OUTPUT_POLICIES, d.on_invalid_output
        ),
        max_reasks=r.number("max_reasks", d.max_reasks, minimum=0, integer=True),
        budget=budget,
        same_deployment_retries=r.number(
            "same_deployment_retries", d.same_deployment_retries, minimum=0, integer=True
        ),
    )
    r.done()
    return cfg
