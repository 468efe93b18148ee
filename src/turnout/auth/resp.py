"""A lean Redis connection for the few commands behind shared key limits.

One connection carries every command, pipelined: a command is written as it comes (commands
issued while others are in flight go out together in one write; a lazy one waits a few ms for
company) and replies, parsed by hiredis, are matched to commands in order. Every command has
a deadline; a reply later than that closes the connection and fails whatever still waits on
it, so a late reply can never be taken for another command's. The next command connects again.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

from turnout.errors import TurnoutError


class RedisError(TurnoutError):
    """Redis answered with an error (a script that failed, a wrong type, a refused AUTH)."""


class RedisUrlError(TurnoutError, ValueError):
    """A Redis URL this client cannot use."""


@dataclass(frozen=True)
class Address:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # a unix socket
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0


def parse_url(url: str) -> Address:
    """`redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS), `unix:///path?db=N`."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    password = query.get("password") or (unquote(parts.password) if parts.password else None)
    username = unquote(parts.username) if parts.username else None
    db_text = query.get("db") or (parts.path.lstrip("/") if parts.scheme != "unix" else None)
    try:
        db = int(db_text or 0)
        port = parts.port
    except ValueError as exc:
        raise RedisUrlError(f"cannot read the Redis URL ({exc})") from None
    if parts.scheme == "unix":
        if not parts.path:
            raise RedisUrlError("a unix:// Redis URL needs the socket's path")
        return Address(path=parts.path, username=username, password=password, db=db)
    if parts.scheme not in ("redis", "rediss"):
        raise RedisUrlError(f"expected redis://, rediss:// or unix://, not {parts.scheme!r}://")
    return Address(
        host=parts.hostname or "127.0.0.1",
        port=port or 6379,
        tls=parts.scheme == "rediss",
        username=username,
        password=password,
        db=db,
    )


class Script:
    """A Lua script, sent by its digest and loaded the first time Redis lacks it."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.sha = hashlib.sha1(body.encode()).hexdigest()


class _Link(asyncio.Protocol):
    """One open connection: commands in flight, in the order they were written."""

    def __init__(self, loop: asyncio.AbstractEventLoop, linger_s: float) -> None:
        self.loop = loop
        self.linger_s = linger_s
        self.reader = hiredis.Reader()
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.held: list[bytes] = []  # not written yet
        self.soon = False  # held commands go out at the end of this turn of the loop
        self.linger: asyncio.TimerHandle | None = None  # or, if all may wait, then
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, packed: bytes, deadline: float, *, lazy: bool = False) -> asyncio.Future[Any]:
        """The reply's future. A `lazy` command may wait up to `linger_s` for others to go
        out with (the next command that is not lazy takes it along)."""
        if self.closed or self.transport is None:
            raise ConnectionError("the connection to Redis is closed")
        reply = self.loop.create_future()
        idle = not self.waiting
        self.waiting.append((reply, deadline))
        if lazy:
            self.held.append(packed)
            if not self.soon and self.linger is None:
                self.linger = self.loop.call_later(self.linger_s, self.flush)
        elif idle and not self.held:
            self.transport.write(packed)
        elif self.held and not self.soon:  # only lazy ones wait: they go now, with this one
            self.held.append(packed)
            self.flush()
        else:  # others are in flight: write this with whatever else comes this turn
            self.held.append(packed)
            if not self.soon:
                self.soon = True
                self.loop.call_soon(self.flush)
        if self.timer is None:
            self.timer = self.loop.call_at(deadline, self._check)
        elif deadline < self.timer.when():
            self.timer.cancel()
            self.timer = self.loop.call_at(deadline, self._check)
        return reply

    def flush(self) -> None:
        self.soon = False
        if self.linger is not None:
            self.linger.cancel()
            self.linger = None
        if self.held and not self.closed and self.transport is not None:
            self.transport.write(b"".join(self.held))
        self.held.clear()

    def _check(self) -> None:
        self.timer = None
        if not self.waiting:
            return
        earliest = min(deadline for _, deadline in self.waiting)
        if earliest <= self.loop.time():
            self.fail(TimeoutError("Redis did not answer in time"))
        else:
            self.timer = self.loop.call_at(earliest, self._check)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                future = self.waiting.popleft()[0]
                if not future.done():  # its caller may have given up
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or a reply nobody asked for
            self.fail(ConnectionError(f"Redis's reply could not be read ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"Redis closed the connection ({exc or 'EOF'})"))

    def fail(self, exc: Exception) -> None:
        """Close the connection and fail every command still waiting on it."""
        self.closed = True
        for timer in (self.timer, self.linger):
            if timer is not None:
                timer.cancel()
        self.timer = self.linger = None
        if self.transport is not None:
            self.transport.abort()
        self.held.clear()
        while self.waiting:
            future = self.waiting.popleft()[0]
            if not future.done():
                future.set_exception(exc)
                future.exception()  # its caller may be gone: not "never retrieved"


class Redis:
    """Commands and scripts over one pipelined connection, reconnecting on the next command
    after the connection failed. A reply waits at most `reply_timeout_s`, a connect at most
    `connect_timeout_s`, and every call at most the `within_s` it passes; a `lazy` script
    waits up to `linger_s` to be written with another command."""

    def __init__(
        self,
        url: str,
        *,
        reply_timeout_s: float = 1.0,
        connect_timeout_s: float = 0.5,
        linger_s: float = 0.005,
    ) -> None:
        self.address = parse_url(url)
        self.reply_timeout_s = reply_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.linger_s = linger_s
        self._link: _Link | None = None
        self._connecting = asyncio.Lock()
        self._closed = False

    async def call(self, *args: Any, within_s: float = 2.0) -> Any:
        """One command's reply; RedisError if it is an error."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within_s
        reply = await self._exchange(loop, hiredis.pack_command(args), end)
        if isinstance(reply, hiredis.ReplyError):
            raise RedisError(str(reply))
        return reply

    async def script(
        self,
        script: Script,
        keys: list[str],
        args: list[Any],
        *,
        within_s: float = 2.0,
        lazy: bool = False,
    ) -> Any:
        """Run a script by its digest; when Redis does not hold it, send it whole (which
        loads it) within the same deadline."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within_s
        tail = (len(keys), *keys, *args)
        pack = hiredis.pack_command
        reply = await self._exchange(loop, pack(("EVALSHA", script.sha, *tail)), end, lazy)
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            reply = await self._exchange(loop, pack(("EVAL", script.body, *tail)), end)
        if isinstance(reply, hiredis.ReplyError):
            raise RedisError(str(reply))
        return reply

    async def close(self) -> None:
        self._closed = True
        if self._link is not None:
            self._link.flush()  # lingering commands still reach Redis, unanswered
            self._link.fail(ConnectionError("the Redis client was closed"))
            self._link = None

    async def _exchange(
        self, loop: asyncio.AbstractEventLoop, packed: bytes, end: float, lazy: bool = False
    ) -> Any:
        link = self._link
        if link is None or link.closed:
            link = await self._connect(loop, end)
        return await link.send(packed, min(loop.time() + self.reply_timeout_s, end), lazy=lazy)

    async def _connect(self, loop: asyncio.AbstractEventLoop, end: float) -> _Link:
        async with asyncio.timeout_at(end):
            async with self._connecting:  # one connect at a time; the others use it
                if self._closed:
                    raise ConnectionError("the Redis client was closed")
                if self._link is not None and not self._link.closed:
                    return self._link
                async with asyncio.timeout(self.connect_timeout_s):
                    link = await self._open(loop)
                if self._closed:  # while connecting
                    link.fail(ConnectionError("the Redis client was closed"))
                    raise ConnectionError("the Redis client was closed")
                hello = self._hello(link, loop, end)  # before any other command
                self._link = link
        for reply in await asyncio.gather(*hello):
            if isinstance(reply, hiredis.ReplyError):
                link.fail(ConnectionError("Redis refused the connection's setup"))
                raise RedisError(str(reply))
        return link

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Link:
        a = self.address

        def link() -> _Link:
            return _Link(loop, self.linger_s)

        if a.path is not None:
            _, made = await loop.create_unix_connection(link, a.path)
        else:
            tls = ssl.create_default_context() if a.tls else None
            _, made = await loop.create_connection(link, a.host, a.port, ssl=tls)
        return made

    def _hello(
        self, link: _Link, loop: asyncio.AbstractEventLoop, end: float
    ) -> list[asyncio.Future[Any]]:
        a, deadline = self.address, min(loop.time() + self.reply_timeout_s, end)
        sent = []
        if a.password is not None:
            auth = ("AUTH", a.username, a.password) if a.username else ("AUTH", a.password)
            sent.append(link.send(hiredis.pack_command(auth), deadline))
        if a.db:
            sent.append(link.send(hiredis.pack_command(("SELECT", a.db)), deadline))
        return sent
