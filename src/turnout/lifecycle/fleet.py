"""What a request may use: the deployments, their backends, breakers, gates and the router."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from turnout.backends.base import Backend
from turnout.config import DeploymentConfig, Tenant
from turnout.lifecycle.policy import Breaker
from turnout.privacy.scanner import Scanner
from turnout.routing.admission import Gate
from turnout.routing.router import Router

if TYPE_CHECKING:
    from turnout.telemetry.tracing import Tracer


@dataclass(slots=True)
class Fleet:
    """What a journey may use: deployments, their backends and breakers."""

    deployments: Mapping[str, DeploymentConfig]
    backends: Mapping[str, Backend]
    breakers: Mapping[str, Breaker]
    rng: random.Random
    router: Router
    scanner: Scanner | None = None
    gates: Mapping[str, Gate] = field(default_factory=dict)
    tenants: Mapping[str, Tenant] = field(default_factory=dict)
    tracer: Tracer | None = None  # spans of upstream calls; None when tracing is off
