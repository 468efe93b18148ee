"""Stalled, idle and excess connections against a real `turnout serve` process.

A client that opens sockets and never finishes its request must not hold them for ever, and
enough of them must not stop the gateway answering everybody else (issue 15, item 9).
"""

from __future__ import annotations

import http.client
import io
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from gateway_process import start_gateway, stop_gateway
from upstream import ScriptedUpstream, Step, free_port

from turnout.config import ConfigError, parse_config
from turnout.server.serve import RESERVED_FDS, connection_cap, limits_for
from turnout.store.query import get_request

CHAT = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}
HALF_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: applic"


class Gateway:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path, db: Path) -> None:
        self.proc, self.port, self.log, self.db = proc, port, log, db
        self.url = f"http://127.0.0.1:{port}"

    def chat(self) -> httpx.Response:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            return client.post("/v1/chat/completions", json=CHAT)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def record(self, request_id: str) -> dict[str, object]:
        deadline = time.monotonic() + 10
        while True:
            try:
                return get_request(f"sqlite:///{self.db}", request_id)
            except LookupError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Gateway]]:
    """Starts gateways (one process each) sharing one scripted upstream, all stopped at the end."""
    tmp_path = tmp_path_factory.mktemp("hygiene")
    procs: list[subprocess.Popen[bytes]] = []
    upstream = ScriptedUpstream(default=Step()).start()

    def start(server: str, nofile: tuple[int, int] | None = None) -> Gateway:
        n = len(procs)
        db, log, config = (tmp_path / f"gw{n}.{ext}" for ext in ("db", "log", "yaml"))
        config.write_text(
            f"""
server: {server}
store: {{url: "sqlite:///{db}", flush_interval_s: 0.05}}
deployments:
  a: {{kind: openai, base_url: "{upstream.base_url}", model: m}}
models:
  assistant: {{deployments: [a]}}
"""
        )
        port = free_port()

        def limit_files() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

        proc = start_gateway(config, port, log, preexec_fn=limit_files)
        procs.append(proc)
        return Gateway(proc, port, log, db)

    start.upstream = upstream  # type: ignore[attr-defined]
    yield start
    for proc in procs:
        stop_gateway(proc)
    upstream.stop()


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the gateway sends before it closes the socket (fails if it never does)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


class _Replay:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, *args: object, **kwargs: object) -> io.BytesIO:
        return io.BytesIO(self.data)


def _parse(response: bytes) -> http.client.HTTPResponse:
    parsed = http.client.HTTPResponse(_Replay(response))  # type: ignore[arg-type]
    parsed.begin()
    return parsed


def _header(response: bytes, name: str) -> str:
    value = _parse(response).getheader(name)
    assert value is not None, f"no {name} header in {response[:300]!r}"
    return value


def _error_body(response: bytes) -> dict[str, object]:
    body: dict[str, object] = orjson.loads(_parse(response).read())["error"]
    return body


@pytest.fixture(scope="module")
def impatient(serve: Callable[..., Gateway]) -> Gateway:
    """A gateway with one-second deadlines and a small head limit."""
    return serve(
        "{header_read_timeout_s: 1, body_read_timeout_s: 1, keepalive_timeout_s: 1,"
        " max_header_bytes: 2048}"
    )


def test_idle_and_half_sent_requests_are_closed_after_their_timeouts(impatient: Gateway) -> None:
    gw = impatient
    silent, half_heads, half_bodies = [], [], []
    for _ in range(100):
        silent.append(gw.connect())
    for _ in range(150):
        s = gw.connect()
        s.sendall(HALF_HEAD)
        half_heads.append(s)
    body = orjson.dumps(CHAT)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    for _ in range(150):
        s = gw.connect()
        s.sendall(head + body[:10])
        half_bodies.append(s)

    # Meanwhile everybody else is served.
    assert gw.chat().status_code == 200

    for s in silent:
        assert _read_until_closed(s) == b""
    for s in half_heads:
        response = _read_until_closed(s)
        assert response.startswith(b"HTTP/1.1 408 ")
        assert _error_body(response)["code"] == "request_timeout"
    ids = []
    for s in half_bodies:
        response = _read_until_closed(s)
        assert response.startswith(b"HTTP/1.1 408 ")
        assert "body not received within 1 s" in str(_error_body(response)["message"])
        ids.append(_header(response, "x-turnout-request-id"))
    for s in silent + half_heads + half_bodies:
        s.close()
    # A slow body is a request like any other: answered, and recorded as rejected.
    for rid in ids[:: len(ids) // 5]:
        record = gw.record(rid)
        assert (record["outcome"], record["http_status"]) == ("rejected", 408)
    assert gw.chat().status_code == 200


def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(
    impatient: Gateway,
) -> None:
    gw = impatient
    with gw.connect() as s:
        body = orjson.dumps(CHAT)
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        response = _read_until_closed(s)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" not in response.lower()  # kept alive, then closed when idle


def test_an_oversized_request_head_is_refused_with_431(impatient: Gateway) -> None:
    gw = impatient
    with gw.connect() as s:
        s.sendall(HALF_HEAD + b"x-padding: " + b"a" * 4096)
        response = _read_until_closed(s)
    assert response.startswith(b"HTTP/1.1 431 ")
    assert _error_body(response)["code"] == "headers_too_large"
    assert gw.chat().status_code == 200


def test_a_flood_of_sockets_past_the_file_limit_does_not_stop_the_gateway(
    serve: Callable[..., Gateway],
) -> None:
    gw = serve("{max_connections: 300, header_read_timeout_s: 30}", nofile=(1024, 1024))
    flood = []
    try:
        for i in range(1100):
            s = gw.connect()
            if i % 2:
                s.sendall(HALF_HEAD)
            flood.append(s)
        # All 1,100 are still open on the client's side, and the head timeout is far away:
        # the gateway makes room by closing the longest idle ones, and answers a new client.
        assert gw.chat().status_code == 200
        assert httpx.get(f"{gw.url}/healthz", timeout=10).status_code == 200
        for s in flood[:700]:
            s.settimeout(10)
            response = _read_until_closed(s)
            assert response == b"" or response.startswith(b"HTTP/1.1 408 ")
    finally:
        for s in flood:
            s.close()
    assert gw.chat().status_code == 200
    log = gw.log.read_text()
    assert "Too many open files" not in log
    assert "at most 300 open (open-file limit 1024)" in log


def test_connections_past_the_cap_with_every_slot_busy_are_refused_at_once(
    serve: Callable[..., Gateway],
) -> None:
    gw = serve("{max_connections: 4}", nofile=(1024, 4096))
    hold = threading.Event()
    upstream: ScriptedUpstream = serve.upstream  # type: ignore[attr-defined]
    upstream.reset()
    upstream.script(*(Step(hold=hold) for _ in range(4)))
    answers: list[int] = []

    def busy() -> None:
        answers.append(gw.chat().status_code)

    workers = [threading.Thread(target=busy) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        upstream.wait_for_requests(4, timeout=10)
        with gw.connect() as s:
            response = _read_until_closed(s)
        assert response.startswith(b"HTTP/1.1 503 ")
        assert _header(response, "retry-after") == "1"
        assert _error_body(response)["code"] == "overloaded"
    finally:
        hold.set()
        for w in workers:
            w.join(timeout=15)
    assert answers == [200, 200, 200, 200]  # the connections already open were served
    assert gw.chat().status_code == 200
    log = gw.log.read_text()
    assert "connection(s) refused so far" in log
    # The same process started with a soft file limit below its hard one: raised, and said so.
    limits = Path(f"/proc/{gw.proc.pid}/limits").read_text()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    assert line.split()[3:5] == ["4096", "4096"]
    assert "open-file limit raised from 1024 to 4096" in log


def test_the_connection_cap_leaves_room_below_the_file_limit() -> None:
    assert connection_cap(None, 1024) == (1024 - RESERVED_FDS) // 2
    assert connection_cap(None, 1 << 20) == 8192
    assert connection_cap(300, 1024) == 300
    assert connection_cap(5000, 1024) == 1024 - RESERVED_FDS
    config = parse_config("server: {max_connections: 50, header_read_timeout_s: 2.5}")
    limits = limits_for(config.server, 1024)
    assert (limits.max_connections, limits.header_read_timeout_s) == (50, 2.5)
    assert limits.body_read_timeout_s == 30 and config.server.keepalive_timeout_s == 5


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        ("{header_read_timeout_s: .nan}", "server.header_read_timeout_s: must be a finite"),
        ("{body_read_timeout_s: 0}", "server.body_read_timeout_s: must be ≥ 0.1"),
        ("{keepalive_timeout_s: .inf}", "server.keepalive_timeout_s: must be a finite"),
        ("{max_connections: 0}", "server.max_connections: must be ≥ 1"),
        ("{max_header_bytes: 10}", "server.max_header_bytes: must be ≥ 1024"),
    ],
)
def test_bad_connection_settings_name_the_key(server: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config(f"server: {server}", "t.yaml")
