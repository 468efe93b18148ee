"""Connection hygiene below the ASGI app: read deadlines, a head size cap, a connection cap.

uvicorn's httptools protocol has a keep-alive timeout but no deadline for a request head, no
bound on its size, and `limit_concurrency` only answers 503 once a head has arrived, so idle
sockets still pile up until the file limit stops `accept()` for everyone. This subclass adds
what is missing and leaves the parsing and the ASGI cycle to uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("turnout.server")

# The app answers a slow body with a recorded 408 at `body_read_timeout_s`; the protocol closes
# the connection this much later only if the app did not.
BODY_BACKSTOP_GRACE_S = 1.0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_read_timeout_s: float
    body_read_timeout_s: float
    max_header_bytes: int
    max_connections: int


def raw_error(status: int, reason: str, message: str, code: str) -> bytes:
    """A whole `connection: close` response in OpenAI's error shape, for use outside the app."""
    body = orjson.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    )
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
    )
    if status == 503:
        head += "retry-after: 1\r\n"
    return head.encode() + b"\r\n" + body


class GuardedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a head deadline and size cap, a body backstop and a connection cap."""

    limits: ClassVar[ConnectionLimits]
    # Connections with no request in flight, longest idle first: who makes room at the cap.
    idle: ClassVar[dict[GuardedProtocol, None]]
    refused: ClassVar[int] = 0

    @classmethod
    def with_limits(cls, limits: ConnectionLimits) -> type[GuardedProtocol]:
        return type("GuardedProtocol", (cls,), {"limits": limits, "idle": {}})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._in_head = True  # from a request's first byte (or the connect) to its last header
        self._head_bytes = 0

    # Connection lifecycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            cls = type(self)
            cls.refused += 1
            if cls.refused == 1 or cls.refused % 1000 == 0:
                log.warning(
                    "%d connection(s) refused so far: all %d allowed (server.max_connections) "
                    "have a request in flight",
                    cls.refused,
                    self.limits.max_connections,
                )
            message = "the gateway is at its connection limit; retry shortly"
            self._close_with(raw_error(503, "Service Unavailable", message, "overloaded"))
            return
        self.idle[self] = None
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self.idle.pop(self, None)
        super().connection_lost(exc)

    def _make_room(self) -> bool:
        """At the cap, close the connection idle the longest; a request in flight is never cut."""
        victim = next(iter(self.idle), None)
        if victim is None:
            return False
        self.idle.pop(victim)
        if victim._head_bytes:
            message = "request head still incomplete when the gateway needed the connection"
            victim._close_with(raw_error(408, "Request Timeout", message, "request_timeout"))
        else:
            victim._close_with(b"")
        return True

    def _close_with(self, response: bytes) -> None:
        self._cancel_timers()
        self.idle.pop(self, None)
        if self.transport.is_closing():
            return
        if response:
            self.transport.write(response)
        self.transport.close()

    # The request head: a deadline and a size cap

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self.limits.header_read_timeout_s, self._timed_out_head
            )

    def _timed_out_head(self) -> None:
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head stalled behind a request in flight: finish that one, then close.
            self.cycle.keep_alive = False
            return
        if self._head_bytes == 0:
            return self._close_with(b"")
        seconds = self.limits.header_read_timeout_s
        message = f"request head not received within {seconds:g} s"
        self._close_with(raw_error(408, "Request Timeout", message, "request_timeout"))

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                limit = self.limits.max_header_bytes
                message = f"request line and headers exceed {limit} bytes"
                fields = "Request Header Fields Too Large"
                self._close_with(raw_error(431, fields, message, "headers_too_large"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self.idle.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        backstop = self.limits.body_read_timeout_s + BODY_BACKSTOP_GRACE_S
        self._body_timer = self.loop.call_later(backstop, self._timed_out_body)

    # The request body: the app answers 408; this only frees a connection it did not

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def _timed_out_body(self) -> None:
        self._body_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle.response_complete:
            self.idle.pop(self, None)  # to the back of the line
            self.idle[self] = None

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
