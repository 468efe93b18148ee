"""The one gate every route that reaches a model passes, whatever its wire format.

A route parses its body (into the OpenAI shape), creates its run, then calls `admit`: 401 for a
missing, unknown, revoked or expired key; 404 for a model not served; 403 for a model the key
may not use; 429 over a rate limit or budget. Whatever it refuses is recorded on the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.auth.guard import Refused
from turnout.errors import ApiError
from turnout.gateway import Gateway
from turnout.lifecycle.run import Run
from turnout.routing.admission import Caller
from turnout.server.fields import quote


async def admit(
    gw: Gateway, headers: Mapping[str, str], body: dict[str, Any] | None, run: Run
) -> tuple[Caller | None, dict[str, str]]:
    """The verified caller and the rate-limit headers to answer with; ApiError when refused.

    `body` None: the route already refused the body; only the key is checked, so a client
    without a valid key hears 401 whatever it sent.
    """
    try:
        caller = gw.guard.authenticate(headers)
    except Refused:
        run.request_body = None  # what a client without a key sent is not kept
        raise
    if caller is not None:
        run.key_id, run.tenant = caller.key_id, caller.tenant
    if body is None:
        return caller, {}
    if body["model"] not in gw.models:
        known = ", ".join(sorted(gw.models))
        raise ApiError(
            404,
            f"model {quote(body['model'])} does not exist here (served: {known})",
            code="model_not_found",
            param="model",
        )
    return caller, await gw.guard.admit(caller, body["model"], body, run.id)
