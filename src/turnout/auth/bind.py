"""Which auth mode a gateway runs in, given where it listens: unauthenticated only on loopback,
unless the config says, in so many words, that it means it."""

from __future__ import annotations

import ipaddress
import logging

from turnout.config.schema import AuthConfig
from turnout.errors import TurnoutError

log = logging.getLogger("turnout.auth")


class UnsafeBind(TurnoutError):
    """A config that would serve models to anyone who can reach a non-loopback address."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def auth_mode(auth: AuthConfig, host: str) -> str:
    """`keys` or `none`; UnsafeBind when `none` would face the network without consent."""
    if auth.mode is None:
        return "none" if is_loopback(host) else "keys"
    if auth.mode == "none" and not is_loopback(host):
        if not auth.allow_unauthenticated:
            raise UnsafeBind(
                f"refusing to serve without client keys on {host}, which is not a loopback "
                "address: anyone who can reach it could spend the deployments' keys. Use "
                "`auth: {mode: keys}` (create keys with `turnout keys create`), bind 127.0.0.1, "
                "or set `auth: {mode: none, allow_unauthenticated: true}` to accept the risk"
            )
        log.warning(
            "AUTH IS OFF on %s (auth.allow_unauthenticated: true): anyone who can reach this "
            "address can use every model and spend the deployments' keys",
            host,
        )
    return auth.mode
