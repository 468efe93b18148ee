"""The lean Redis connection behind shared key limits, against a real `redis-server`."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import uvloop
from redis_server import RedisServer

from turnout.auth.resp import Address, Redis, RedisError, RedisUrlError, Script, parse_url

ECHO_KEYS = Script("return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}")


Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """Each scenario on both event loops the gateway may run on (uvicorn picks uvloop)."""
    return asyncio.run if request.param == "asyncio" else uvloop.run


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis")
    yield srv
    srv.stop()


@pytest.fixture
def control(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


def test_a_burst_of_concurrent_commands_gets_each_its_own_reply(
    run: Run, server: RedisServer
) -> None:
    async def scenario() -> list[object]:
        client = Redis(server.url)
        try:
            return await asyncio.gather(*(client.call("ECHO", f"m{i}") for i in range(500)))
        finally:
            await client.close()

    assert run(scenario()) == [f"m{i}".encode() for i in range(500)]


def test_a_script_runs_and_is_loaded_again_after_script_flush(
    run: Run, server: RedisServer, control: redis.Redis
) -> None:
    async def scenario() -> tuple[object, object]:
        client = Redis(server.url)
        try:
            first = await client.script(ECHO_KEYS, ["k"], ["a"])
            control.script_flush()
            assert control.script_exists(ECHO_KEYS.sha) == [False]
            return first, await client.script(ECHO_KEYS, ["k"], ["b"])
        finally:
            await client.close()

    assert run(scenario()) == ([b"k", b"a", 1], [b"k", b"b", 2])
    assert control.script_exists(ECHO_KEYS.sha) == [True]


INCR = Script("return redis.call('INCR', KEYS[1])")


def test_a_lazy_script_goes_out_with_the_next_command_before_it(
    run: Run, server: RedisServer
) -> None:
    async def scenario() -> list[object]:
        client = Redis(server.url, linger_s=60.0)  # it would wait that long alone
        try:
            await client.script(INCR, ["loaded"], [])  # else it is sent again, after the GET
            lazy = client.script(INCR, ["k"], [], lazy=True)
            both = asyncio.gather(lazy, client.call("GET", "k"))
            return list(await asyncio.wait_for(both, 10))
        finally:
            await client.close()

    assert run(scenario()) == [1, b"1"]


def test_a_lazy_script_alone_goes_out_after_its_linger(run: Run, server: RedisServer) -> None:
    async def scenario() -> list[object]:
        client = Redis(server.url, linger_s=0.01)
        try:
            await client.call("PING")
            return [await client.script(INCR, ["k"], [], lazy=True) for _ in range(3)]
        finally:
            await client.close()

    assert run(scenario()) == [1, 2, 3]


def test_a_lazy_script_still_reaches_redis_when_the_client_closes(
    run: Run, server: RedisServer, control: redis.Redis
) -> None:
    async def scenario() -> None:
        client = Redis(server.url, linger_s=60.0)
        await client.script(INCR, ["loaded"], [])
        lazy = asyncio.ensure_future(client.script(INCR, ["k"], [], lazy=True))
        await asyncio.sleep(0)  # it is held, waiting for company
        await client.close()
        with pytest.raises(ConnectionError):
            await lazy

    run(scenario())
    for _ in range(100):
        if control.get("k") == b"1":
            return
        time.sleep(0.02)
    raise AssertionError("the lazy script never ran")


def test_an_error_reply_raises_and_the_connection_goes_on(run: Run, server: RedisServer) -> None:
    async def scenario() -> object:
        client = Redis(server.url)
        try:
            await client.call("SET", "s", "text")
            with pytest.raises(RedisError, match="WRONGTYPE"):
                await client.call("LPUSH", "s", "x")
            with pytest.raises(RedisError, match="boom"):
                await client.script(Script("return redis.error_reply('boom')"), [], [])
            return await client.call("GET", "s")
        finally:
            await client.close()

    assert run(scenario()) == b"text"


def test_a_reply_later_than_its_deadline_is_never_taken_for_the_next_commands(
    run: Run, server: RedisServer, control: redis.Redis
) -> None:
    async def scenario() -> object:
        client = Redis(server.url, reply_timeout_s=0.2)
        try:
            await client.call("SET", "k", "old")
            control.execute_command("CLIENT", "PAUSE", "1000", "ALL")
            with pytest.raises(TimeoutError):
                await client.call("GET", "k")  # answered "old", but only after the pause
            control.set("k", "new")  # runs when the pause ends, as does the late GET
            return await client.call("GET", "k", within_s=5.0)
        finally:
            await client.close()

    assert run(scenario()) == b"new"


def test_a_call_gives_up_within_its_own_deadline(
    run: Run, server: RedisServer, control: redis.Redis
) -> None:
    async def scenario() -> None:
        client = Redis(server.url, reply_timeout_s=5.0)
        try:
            await client.call("PING")
            control.execute_command("CLIENT", "PAUSE", "1000", "ALL")
            with pytest.raises(TimeoutError):
                await client.script(ECHO_KEYS, ["k"], ["a"], within_s=0.2)
        finally:
            await client.close()

    run(scenario())


def test_a_cancelled_caller_leaves_the_replies_in_order(
    run: Run, server: RedisServer, control: redis.Redis
) -> None:
    async def scenario() -> list[object]:
        client = Redis(server.url)
        try:
            await client.call("SET", "k", "v")
            control.execute_command("CLIENT", "PAUSE", "300", "ALL")
            gone = asyncio.ensure_future(client.call("ECHO", "cancelled"))
            await asyncio.sleep(0.05)
            gone.cancel()
            return list(await asyncio.gather(client.call("GET", "k"), client.call("ECHO", "x")))
        finally:
            await client.close()

    assert run(scenario()) == [b"v", b"x"]


def test_redis_stopping_fails_calls_and_a_new_one_is_used_when_it_is_back(
    run: Run, server: RedisServer, tmp_path: Path
) -> None:
    async def scenario() -> object:
        client = Redis(server.url)
        try:
            await client.call("SET", "k", "v")
            server.stop()
            with pytest.raises(ConnectionError):
                await client.call("GET", "k")
            with pytest.raises(ConnectionError):  # refused: nothing listens
                await client.call("GET", "k")
            back = RedisServer(tmp_path / "again", port=server.port)
            try:
                await client.call("SET", "k", "again")
                return await client.call("GET", "k")
            finally:
                back.stop()
        finally:
            await client.close()

    assert run(scenario()) == b"again"


def test_the_url_chooses_the_database_and_the_password(
    run: Run, server: RedisServer, control: redis.Redis
) -> None:
    control.config_set("requirepass", "s3cret/pass")

    async def scenario() -> None:
        wrong = Redis(f"redis://:nope@127.0.0.1:{server.port}/0")
        with pytest.raises(RedisError, match="WRONGPASS"):
            await wrong.call("PING")
        await wrong.close()
        client = Redis(f"redis://:s3cret%2Fpass@127.0.0.1:{server.port}/3")
        try:
            await client.call("SET", "where", "db3")
        finally:
            await client.close()

    try:
        run(scenario())
        control.execute_command("AUTH", "s3cret/pass")
        assert control.execute_command("SELECT", "3") and control.get("where") == b"db3"
    finally:
        control.config_set("requirepass", "")


def test_a_closed_client_refuses_commands(run: Run, server: RedisServer) -> None:
    async def scenario() -> None:
        client = Redis(server.url)
        await client.call("PING")
        await client.close()
        with pytest.raises(ConnectionError):
            await client.call("PING")

    run(scenario())


def test_urls_are_read_or_refused_clearly() -> None:
    assert parse_url("redis://h:7000/2") == Address(host="h", port=7000, db=2)
    assert parse_url("rediss://u:p@h") == Address(host="h", tls=True, username="u", password="p")
    assert parse_url("unix:///run/redis.sock?db=4") == Address(path="/run/redis.sock", db=4)
    with pytest.raises(RedisUrlError, match="http"):
        parse_url("http://h:6379")
    with pytest.raises(RedisUrlError, match="URL"):
        parse_url("redis://h:port/0")


def test_a_unix_socket_url_reaches_redis_and_its_database(run: Run, tmp_path: Path) -> None:
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed (Debian's redis-server package)"
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(sock), "--dir", str(tmp_path),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(500):
            if sock.exists():
                break
            time.sleep(0.02)

        async def scenario() -> None:
            client = Redis(f"unix://{sock}?db=2")
            try:
                await client.call("SET", "where", "db2")
            finally:
                await client.close()

        run(scenario())
        control = redis.Redis(unix_socket_path=str(sock), db=2)
        assert control.get("where") == b"db2"
        control.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
