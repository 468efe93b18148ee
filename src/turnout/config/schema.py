"""The config's shape: typed, frozen, and every default written down here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROUTINGS = ("ordered", "policy", "cascade", "balanced")
BALANCE_STRATEGIES = ("round_robin", "least_requests", "power_of_two", "least_work")
OBJECTIVES = ("cheapest_within_slo", "fastest", "local_only", "cloud_only")
PRIVACY_MODES = ("block", "redact", "off")
TRUSTED_TAGS = frozenset({"local", "trusted"})
TRUNCATION_POLICIES = ("accept", "retry", "fail")
INVALID_OUTPUT_POLICIES = ("retry", "fail")
RECORD_BODIES = ("full", "redacted", "none")
DEPLOYMENT_KINDS = ("embedded", "openai", "anthropic")
DEPLOYMENT_APIS = ("chat", "responses")
ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
AUTH_MODES = ("keys", "none")
PROTECTABLE = ("metrics", "admin")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8700
    max_body_bytes: int = 4 * 1024 * 1024
    # Connection hygiene: a client that stalls is cut off, never held open for ever.
    header_read_timeout_s: float = 10.0  # connect (or first byte) → end of the request head
    body_read_timeout_s: float = 30.0  # end of the head → end of the body; then 408
    keepalive_timeout_s: float = 5.0  # idle between requests on a kept-alive connection
    max_header_bytes: int = 64 * 1024  # the request line and headers; beyond it 431
    # Open client connections; None: half of what the file limit leaves after a reserve of
    # 256 descriptors (each client connection may hold an upstream one), at most 8,192.
    max_connections: int | None = None
    ui: bool = True  # the operator console at /ui/ (behind the admin key when keys are on)
    # Serving processes on the one port (`turnout serve --workers N` overrides); more than one
    # needs `state.url`, so limits and caps hold across them.
    workers: int = 1


@dataclass(frozen=True, slots=True)
class Retention:
    """How long and how much of the record is kept; the oldest records go first. 0: no limit.

    30 days spans a monthly bill and the history `turnout migrate` replays and estimates warm
    from; 1 GiB holds ~100,000 typical chat records with full bodies (or ~250 of the largest,
    4 MiB bodies) and is small next to any disk a gateway runs on.
    """

    max_age_days: float = 30.0
    max_bytes: int = 1024**3  # the database's pages in use
    check_s: float = 60.0  # how often the writer enforces both


@dataclass(frozen=True, slots=True)
class StoreConfig:
    url: str = "sqlite:///turnout.db"
    record_bodies: str = "full"
    flush_interval_s: float = 0.2
    queue_size: int = 10_000
    retention: Retention = field(default_factory=Retention)


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    otlp_endpoint: str | None = None
    service_name: str = "turnout"
    # Message content on call spans (GenAI conventions, opt-in); follows store.record_bodies.
    capture_content: bool = False


@dataclass(frozen=True, slots=True)
class Price:
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
        ) / 1e6


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 2.0
    first_token_s: float = 20.0
    idle_s: float = 20.0
    total_s: float = 120.0


@dataclass(frozen=True, slots=True)
class Cooldown:
    """Circuit breaker: after `failures` consecutive failures the deployment rests.

    The first rest is `probe_after_s` (then one request probes it); each failed probe doubles
    the rest, up to `seconds`. A primary that recovers is back within seconds, not a full rest.
    """

    failures: int = 3
    seconds: float = 30.0
    probe_after_s: float = 5.0


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    name: str
    kind: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    tags: tuple[str, ...] = ()
    max_concurrency: int | None = 2  # None: no gateway-side cap (the default for HTTP APIs)
    max_queue: int = 64
    n_ctx: int = 2048
    price: Price = field(default_factory=Price)
    timeouts: Timeouts = field(default_factory=Timeouts)
    cooldown: Cooldown = field(default_factory=Cooldown)
    context_window: int | None = None  # tokens; None: unknown, assumed to fit
    supports_tools: bool = True
    supports_structured_output: bool = True
    hourly_usd: float | None = None  # amortised hardware cost, for edge deployments
    rtt_probe_s: float = 15.0  # how often an idle HTTP deployment's round trip is measured
    # Where the server reports its own load (vLLM or llama.cpp `/metrics`); scraped only for
    # deployments of a `routing: balanced` model. None: the base URL without `/v1`, + `/metrics`.
    metrics_url: str | None = None
    scrape_s: float = 1.0  # 0: do not scrape
    # Request fields forwarded beyond the OpenAI fields turnout checks (e.g. vLLM's `top_k`), and
    # `service_tier` / `store`, which change what the provider bills or keeps.
    pass_fields: tuple[str, ...] = ()
    # Continues a trailing assistant message (mid-stream continuation needs it); true for the
    # embedded runtime. `prefill_fields` go into a continuation's body: vLLM wants
    # {continue_final_message: true, add_generation_prompt: false}; llama.cpp's server none.
    supports_prefill: bool = False
    prefill_fields: tuple[tuple[str, Any], ...] = ()
    anthropic_version: str = ANTHROPIC_VERSION  # kind anthropic: the `anthropic-version` header
    # kind openai: `chat` (/chat/completions) or `responses` (called through /responses).
    api: str = "chat"

    def wire_out(self, operation: str) -> str:
        """The wire format turnout speaks to this deployment for an operation (`chat`, …)."""
        if self.kind == "anthropic":
            return "messages"
        if self.api == "responses":
            return "responses"
        return "chat.completions" if operation == "chat" else "completions"

    @property
    def scrape_url(self) -> str | None:
        if self.scrape_s <= 0 or self.kind != "openai":
            return None
        if self.metrics_url is not None:
            return self.metrics_url
        assert self.base_url is not None
        return self.base_url.removesuffix("/v1") + "/metrics"

    @property
    def trusted(self) -> bool:
        """May see sensitive data: tagged `local` or `trusted`; anything else counts as cloud."""
        return not TRUSTED_TAGS.isdisjoint(self.tags)


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 0.2
    max_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Budget:
    max_total_tokens: int | None = None
    max_cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    max_attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    on_truncation: str = "retry"
    on_invalid_output: str = "retry"
    max_reasks: int = 1
    budget: Budget = field(default_factory=Budget)
    # A transient failure (a one-off 5xx, a 429/503 whose Retry-After fits backoff.max_s) is
    # tried this many times more on the same deployment before falling back; 0: fall back at once.
    same_deployment_retries: int = 1


@dataclass(frozen=True, slots=True)
class CascadeCheck:
    """Beyond the lifecycle validators: what a cheap answer must show to be kept."""

    must_match: str | None = None
    min_chars: int = 0


@dataclass(frozen=True, slots=True)
class ShadowConfig:
    """Mirror a fraction of a model's traffic to a candidate; the client never waits for it."""

    deployment: str
    fraction: float = 0.1
    budget_usd: float | None = None  # what the shadows may cost in all; None: no cap
    max_in_flight: int = 8  # shadows running at once; beyond it a mirror is skipped and counted


@dataclass(frozen=True, slots=True)
class CanaryGate:
    """What the candidate must show, against the old deployments in the same stage, to move on."""

    alpha: float = 0.05
    success_margin: float = 0.05  # absolute: how much lower its success rate may be
    latency_margin: float = 0.25  # relative: how much slower (median shift) it may be
    cost_margin: float = 0.25  # relative, on cost per request
    # absolute: how much more often its answers may miss what users meant (intent signals)
    miss_margin: float = 0.05


@dataclass(frozen=True, slots=True)
class IntentSettings:
    """Reading a model's conversations for answers that missed what the user meant."""

    detect: bool = True  # signals in the record, the header, spans and metrics
    semantic: bool = True  # MiniLM similarity for rephrases, when the model package is installed
    on_rephrase: str = (
        "none"  # none | escalate: a rephrase or correction goes to the next deployment
    )
    regenerate_window_s: float = 600.0  # the same conversation resent within this is a regenerate
    semantic_wait_ms: float = 50.0  # how long an answer may wait for a late semantic check


INTENT_ACTIONS = ("none", "escalate")


@dataclass(frozen=True, slots=True)
class CanaryConfig:
    """A weighted split that steps the candidate up through `stages` (percent of traffic)."""

    deployment: str
    stages: tuple[float, ...] = (1.0, 5.0, 25.0, 50.0, 100.0)
    min_requests_per_stage: int = 100  # candidate requests before a stage may be judged
    max_requests_per_stage: int = 2000  # still undecided after this many: roll back
    min_stage_s: float = 300.0
    gate: CanaryGate = field(default_factory=CanaryGate)


@dataclass(frozen=True, slots=True)
class ModelConfig:
    name: str
    deployments: tuple[str, ...]
    routing: str = "ordered"
    lifecycle: LifecyclePolicy = field(default_factory=LifecyclePolicy)
    objective: str = "cheapest_within_slo"
    privacy: str = "off"
    latency_budget_ms: float | None = None
    deadline_ms: float | None = None  # shed a request predicted to finish later than this
    balance: str = "least_work"  # with routing: balanced
    cascade: CascadeCheck = field(default_factory=CascadeCheck)
    shadow: ShadowConfig | None = None
    canary: CanaryConfig | None = None
    intent: IntentSettings = field(default_factory=IntentSettings)


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    priority: str = "normal"  # high | normal | low
    weight: float = 1.0  # share of tokens under contention
    api_key_sha256: tuple[str, ...] = ()  # clients whose key hashes to one of these
    header_claim: bool = False  # may a client without such a key select it by x-turnout-tenant?


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    patterns: dict[str, str] = field(default_factory=dict)  # name → regex
    terms: tuple[str, ...] = ()
    presidio: bool = False
    sticky_conversations: int = 100_000  # how many sensitive conversation ids to remember


@dataclass(frozen=True, slots=True)
class StateConfig:
    """Routing state shared by gateway replicas; None: each gateway works alone."""

    url: str | None = None  # redis://host:port/db
    lease_ttl_s: float = 30.0  # a crashed replica's concurrency leases expire after this
    sync_s: float = 0.25  # how often in-flight work is published and read
    leader_ttl_s: float = 5.0  # the fleet leader's lease: a dead leader is replaced within it


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Client keys. `mode` None: `none` on a loopback bind, `keys` on any other (fails closed)."""

    mode: str | None = None  # keys | none
    admin_key_env: str = "TURNOUT_ADMIN_KEY"  # the admin API, and what `protect` names
    protect: tuple[str, ...] = ("metrics", "admin")  # with mode keys; the admin API always
    allow_unauthenticated: bool = False  # mode none on a non-loopback bind: only with this
    refresh_s: float = 0.5  # how often keys are re-read: a revocation elsewhere shows within it
    spend_flush_s: float = 1.0  # how often spend reaches the store


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """One deployment the fingerprint watch checks against a stored baseline."""

    deployment: str
    baseline: str  # a stored baseline's name; in config, default: the deployment's name
    suite: str | None = None  # None: the suite the baseline was collected with
    every_s: float = 3600.0
    samples: int = 50  # completions per check
    max_cost_usd: float | None = None  # per check; None: no cap
    take_out: bool = False  # on alarm, out of rotation until a check passes


@dataclass(frozen=True, slots=True)
class PassiveSettings:
    """CUSUM over the record between checks."""

    every_s: float = 60.0
    warmup: int = 1000  # observations per route and signal before a reference is fixed
    batch: int = 20  # observations averaged per CUSUM step for output length
    threshold: float = 12.0  # CUSUM decision interval h, in standard deviations (lengths)
    rate_threshold: float = 12.0  # h for the Bernoulli CUSUMs, in log-likelihood ratio


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """The `fingerprint:` section: the gateway's watch for silent model swaps; empty: off."""

    targets: tuple[WatchTarget, ...] = ()
    alpha: float = 0.05  # per check, for the combined verdict
    consecutive: int = 2  # rejections in a row that raise an alarm
    store: str | None = None  # sqlite:///PATH; None: the record's store
    concurrency: int = 2  # probe requests at a time, where a deployment sets no max_concurrency
    permutations: int = 1000
    passive: PassiveSettings | None = None  # None: no passive monitoring

    @property
    def enabled(self) -> bool:
        return bool(self.targets) or self.passive is not None


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    deployments: dict[str, DeploymentConfig] = field(default_factory=dict)
    models: dict[str, ModelConfig] = field(default_factory=dict)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    tenants: dict[str, Tenant] = field(default_factory=dict)
    source: str = "<default>"
    state: StateConfig = field(default_factory=StateConfig)
    fingerprint: WatchSettings = field(default_factory=WatchSettings)
    auth: AuthConfig = field(default_factory=AuthConfig)


def default_config() -> Config:
    """The zero-config gateway: one logical model `local` on the embedded SmolLM2-135M."""
    edge = DeploymentConfig(
        name="edge", kind="embedded", model="smollm2-135m", tags=("local",), max_concurrency=2
    )
    return Config(
        deployments={"edge": edge},
        models={"local": ModelConfig(name="local", deployments=("edge",))},
    )
