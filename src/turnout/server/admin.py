"""The admin API: `/admin/v1/keys[/{id}]`, the same operations as `turnout keys`.

Store work runs in a worker thread: the event loop keeps serving model traffic meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from turnout.auth import manage
from turnout.auth.guard import Guard
from turnout.auth.keys import KeySpec, KeySpecError
from turnout.errors import ApiError
from turnout.store.errors import RecordNotFound, StoreError

PREFIX = "/admin/v1/keys"


async def admin_keys(guard: Guard, method: str, path: str, raw: bytes) -> tuple[int, Any]:
    """(status, JSON body) for an admin request already authorised; ApiError for bad ones."""
    rest = path.removeprefix(PREFIX).strip("/")
    if "/" in rest:
        raise ApiError(404, f"no route {path[:80]}", code="not_found")
    try:
        if not rest:
            if method == "POST":
                return 201, await _create(guard, raw)
            if method in ("GET", "HEAD"):
                keys = await asyncio.to_thread(guard.store().all)
                data = [{**k.public(), "status": manage.status(k)} for k in keys]
                return 200, {"object": "list", "data": data}
            raise _method(path, "GET, POST")
        if method in ("GET", "HEAD"):
            return 200, await asyncio.to_thread(
                manage.describe, guard.store(), guard.store_url, rest
            )
        if method == "DELETE":
            key = await asyncio.to_thread(manage.revoke, guard.store(), rest)
            guard.ring().learn(key)
            return 200, {**key.public(), "status": manage.status(key)}
        raise _method(path, "GET, DELETE")
    except RecordNotFound:
        raise ApiError(404, f"no client key with id {rest[:64]!r}", code="not_found") from None
    except KeySpecError as exc:
        raise ApiError(400, str(exc), code="invalid_value") from None
    except StoreError as exc:
        raise ApiError(503, f"the key store cannot be used: {exc}", code="store_error") from None


async def _create(guard: Guard, raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_json")
    spec = KeySpec.parse(body)
    key, secret = await asyncio.to_thread(manage.create, guard.store(), spec)
    guard.ring().learn(key)
    guard.metrics.keys.add(key.id)
    return {**key.public(), "status": "active", "key": secret}


def _method(path: str, allow: str) -> ApiError:
    return ApiError(405, f"{path[:80]} takes {allow}", code="method", headers={"allow": allow})
