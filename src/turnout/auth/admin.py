"""The admin key: what the admin API, and whatever `auth.protect` names, require."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from turnout.config.schema import AuthConfig
from turnout.errors import ApiError
from turnout.routing.admission import client_key


def admin_refusal(auth: AuthConfig, headers: Mapping[str, str]) -> ApiError | None:
    """None when the request carries the admin key; else the error to answer with."""
    expected = os.environ.get(auth.admin_key_env, "")
    if not expected:
        return ApiError(
            403,
            f"no admin key is configured: set the environment variable {auth.admin_key_env} "
            "where the gateway runs",
            type="permission_error",
            code="admin_key_not_configured",
        )
    given = client_key(headers)
    # Digests first: compare_digest then takes equal lengths, so timing tells nothing.
    if given is None or not hmac.compare_digest(_sha(given), _sha(expected)):
        return ApiError(
            401,
            "this needs the admin key (`Authorization: Bearer …` or `x-api-key: …`)",
            code="invalid_api_key",
        )
    return None


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "replace")).digest()
