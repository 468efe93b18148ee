"""Which request fields go upstream: the OpenAI fields turnout checked, and what a deployment adds.

A field turnout does not know was never checked, so it is not forwarded unless the deployment
names it in `pass_fields`; `service_tier` and `store` are known but change what the provider bills
or keeps, so they too go only where named. The record lists what was held back.
"""

from __future__ import annotations

from typing import Any

from turnout.backends.protocol import REQUEST_FIELDS
from turnout.config import DeploymentConfig

_OPT_IN = frozenset({"service_tier", "store"})
FORWARDED = REQUEST_FIELDS - _OPT_IN
# Sampling fields an upstream kind checks itself (the embedded backend answers a bad one with 400).
BY_KIND = {
    "embedded": FORWARDED | {"top_k", "min_p", "repeat_penalty"},
    "anthropic": FORWARDED | {"top_k"},
}


def forwardable(body: dict[str, Any], dep: DeploymentConfig) -> tuple[dict[str, Any], list[str]]:
    """The body to send to `dep`, and the names of the fields held back."""
    allowed = BY_KIND.get(dep.kind, FORWARDED)
    held = [k for k in body if k not in allowed and k not in dep.pass_fields]
    if not held:
        return body, held
    return {k: v for k, v in body.items() if k not in held}, sorted(held)
