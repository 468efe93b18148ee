"""Connect to a server the way the guard does and write down what it is and what it offers."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TextIO

from mcp.shared.message import SessionMessage
from mcp_types import ErrorData, JSONRPCError, JSONRPCRequest, JSONRPCResponse

from turnout.mcp.config import ServerSpec
from turnout.mcp.identity import resolve_identity
from turnout.mcp.lockfile import Observation
from turnout.mcp.upstream import UpstreamLink, initialize_params, open_transport


async def observe(
    spec: ServerSpec,
    *,
    timeout: float = 60.0,
    env_extra: dict[str, str] | None = None,
    errlog: TextIO | None = None,
) -> Observation:
    """Resolve the package, launch the server, handshake, list every tool, shut it down."""
    package = resolve_identity(spec)
    async with asyncio.timeout(timeout):
        async with open_transport(spec, env_extra=env_extra, errlog=errlog) as (read, write):
            link: UpstreamLink

            async def refuse(message: SessionMessage) -> None:
                # The snapshot is no agent: it has no roots to offer and answers no sampling or
                # elicitation request.
                request = message.message
                if isinstance(request, JSONRPCRequest) and request.method == "roots/list":
                    await link.send(
                        JSONRPCResponse(jsonrpc="2.0", id=request.id, result={"roots": []})
                    )
                elif isinstance(request, JSONRPCRequest):
                    await link.send(
                        JSONRPCError(
                            jsonrpc="2.0",
                            id=request.id,
                            error=ErrorData(code=-32601, message="not supported by the snapshot"),
                        )
                    )

            link = UpstreamLink(read, write, refuse)
            reader = asyncio.create_task(link.run())
            try:
                init = await link.call("initialize", initialize_params(), timeout)
                await link.notify("notifications/initialized")
                tools = (
                    await link.list_tools(timeout)
                    if "tools" in (init.get("capabilities") or {})
                    else []
                )
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
    if package.get("installed") is False:
        # npx fetched the package while launching: now there is something on disk to identify.
        package = resolve_identity(spec)
    return Observation(
        launch=spec.launch(),
        package=package,
        server_info=_info(init.get("serverInfo")),
        instructions=init.get("instructions"),
        tools={t["name"]: t for t in tools if isinstance(t.get("name"), str)},
    )


def _info(info: Any) -> dict[str, Any] | None:
    if not isinstance(info, dict):
        return None
    return {k: info[k] for k in ("name", "version") if k in info}
