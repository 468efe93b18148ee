"""A loopback forward proxy that sees each outbound request of a server and asks for a verdict.

Servers reach it through HTTP(S)_PROXY (plain HTTP in full; HTTPS as a CONNECT tunnel, of which
only the host is visible) or through the Node preload hook, which reports the request itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from turnout.mcp.egress.node_hook import hook_path
from turnout.mcp.egress.shapes import shape_of, tunnel_shape

log = logging.getLogger("turnout.mcp.egress")

_MAX_BODY = 8 * 1024 * 1024
_HOP_HEADERS = {"proxy-connection", "proxy-authorization", "connection", "keep-alive"}


@dataclass(frozen=True, slots=True)
class Verdict:
    allow: bool
    reason: str = ""


Decide = Callable[[dict[str, Any]], Verdict]


class EgressRecorder:
    def __init__(self, decide: Decide, host: str = "127.0.0.1"):
        self._decide = decide
        self._host = host
        self._token = secrets.token_hex(12)
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def env(self, existing_node_options: str = "") -> dict[str, str]:
        """What the server is launched with so that its requests pass by here."""
        proxy = f"http://{self._host}:{self.port}"
        node_options = f"{existing_node_options} --require {hook_path()}".strip()
        return {
            "HTTP_PROXY": proxy,
            "HTTPS_PROXY": proxy,
            "http_proxy": proxy,
            "https_proxy": proxy,
            "NO_PROXY": "",
            "no_proxy": "",
            "NODE_OPTIONS": node_options,
            "TURNOUT_EGRESS_URL": f"{proxy}/__turnout/{self._token}/egress",
        }

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # the Node hook keeps its connection for the next verdict
                head = await reader.readuntil(b"\r\n\r\n")
                line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _version = line.split(" ", 2)
                headers = [tuple(h.split(":", 1)) for h in header_lines if ":" in h]
                hmap = {k.strip().lower(): v.strip() for k, v in headers}
                if method == "CONNECT":
                    await self._tunnel(target, reader, writer)
                    return
                body = await _read_body(reader, hmap)
                if target == f"/__turnout/{self._token}/egress":
                    keep = hmap.get("connection", "").lower() != "close"
                    await self._hook_report(body, writer, keep)
                    if keep:
                        continue
                elif target.startswith("http://"):
                    await self._forward(method, target, headers, body, hmap, reader, writer)
                else:
                    await _respond(writer, 400, "turnout egress recorder: not a proxy request")
                return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # also how a kept-alive connection ends: closed between requests
        except (ConnectionError, OSError) as exc:
            log.debug("egress connection ended: %s", exc)
        finally:
            writer.close()

    async def _hook_report(self, body: bytes, writer: asyncio.StreamWriter, keep: bool) -> None:
        try:
            report = json.loads(body)
            shape = shape_of(
                report["method"], report["url"], report.get("body"), report.get("contentType")
            )
        except (ValueError, KeyError, TypeError):
            verdict = Verdict(False, "unreadable report")
        else:
            verdict = self._decide(shape)
        payload = json.dumps({"allow": verdict.allow, "reason": verdict.reason}).encode()
        connection = b"keep-alive" if keep else b"close"
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: "
            + connection
            + f"\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port_text = target.rpartition(":")
        port = int(port_text or 443)
        host = host.strip("[]")
        verdict = self._decide(tunnel_shape(host, port))
        if not verdict.allow:
            await _respond(writer, 403, f"turnout egress guard refused: {verdict.reason}")
            return
        up_reader, up_writer = await asyncio.open_connection(host, port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await _pipe_both(reader, writer, up_reader, up_writer)

    async def _forward(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, ...]],
        body: bytes,
        hmap: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        shape = shape_of(method, target, body, hmap.get("content-type"))
        verdict = self._decide(shape)
        if not verdict.allow:
            await _respond(writer, 403, f"turnout egress guard refused: {verdict.reason}")
            return
        from urllib.parse import urlsplit

        parts = urlsplit(target)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        lines = [f"{method} {path} HTTP/1.1"]
        for k, v in headers:
            if k.strip().lower() not in _HOP_HEADERS | {"transfer-encoding", "content-length"}:
                lines.append(f"{k.strip()}: {v.strip()}")
        lines += [f"content-length: {len(body)}", "connection: close", "", ""]
        up_writer.write("\r\n".join(lines).encode("latin-1") + body)
        await up_writer.drain()
        await _pipe(up_reader, writer)
        up_writer.close()


async def _read_body(reader: asyncio.StreamReader, hmap: dict[str, str]) -> bytes:
    if "chunked" in hmap.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return bytes(out)
            out += await reader.readexactly(size)
            await reader.readexactly(2)
            if len(out) > _MAX_BODY:
                raise ValueError("body too large")
    length = int(hmap.get("content-length") or 0)
    if length > _MAX_BODY:
        raise ValueError("body too large")
    return await reader.readexactly(length) if length else b""


async def _respond(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    body = text.encode()
    reason = {400: "Bad Request", 403: "Forbidden"}.get(status, "Error")
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await src.read(65536):
            dst.write(chunk)
            await dst.drain()


async def _pipe_both(
    a_r: asyncio.StreamReader,
    a_w: asyncio.StreamWriter,
    b_r: asyncio.StreamReader,
    b_w: asyncio.StreamWriter,
) -> None:
    async def one(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        await _pipe(src, dst)
        with contextlib.suppress(Exception):
            dst.close()

    await asyncio.gather(one(a_r, b_w), one(b_r, a_w))
