"""The console's session: the admin key once, through a form; after that an HMAC-derived token.

The cookie never holds the key. Its token is `expiry.mac`, where mac = HMAC-SHA256 keyed by the
admin key over the expiry: every gateway process holding the same key accepts it (workers
included), nothing needs storing, and changing the admin key ends every session at once.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

COOKIE = "turnout_console"
LIFETIME_S = 12 * 3600
_CONTEXT = b"turnout console session v1:"


def mint(admin_key: str, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + LIFETIME_S)
    return f"{expires}.{_mac(admin_key, expires)}"


def valid(admin_key: str, token: str, now: float | None = None) -> bool:
    expires_text, _, mac = token.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12 or not mac:
        return False
    expires = int(expires_text)
    if expires < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(mac, _mac(admin_key, expires))


def _mac(admin_key: str, expires: int) -> str:
    key = admin_key.encode("utf-8", "replace")
    return hmac.new(key, _CONTEXT + str(expires).encode(), hashlib.sha256).hexdigest()


def cookie_token(headers: Mapping[str, str]) -> str | None:
    """The session token the browser sent, if any."""
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def set_cookie(token: str, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{COOKIE}={token}; Path=/ui; Max-Age={LIFETIME_S}; HttpOnly; SameSite=Strict{flags}"


def clear_cookie() -> str:
    return f"{COOKIE}=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict"
