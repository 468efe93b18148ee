"""An MCP client, as a desktop client would be: it starts `turnout mcp proxy` for the server
`mail` over stdio and calls `send_email` once.

    python client.py friend@example.com [--config turnout-mcp.yaml]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import anyio
from mcp import Client, MCPError, StdioServerParameters


async def main(to: str, config: Path) -> int:
    proxy = StdioServerParameters(
        command=sys.executable,
        args=["-m", "turnout", "mcp", "proxy", "--config", str(config), "mail"],
        env=dict(os.environ),  # the proxy passes none of it on to the server unless told
    )
    async with Client(proxy) as client:
        try:
            result = await client.call_tool(
                "send_email", {"to": to, "subject": "hello", "body": "see you"}
            )
        except MCPError as exc:
            print(f"error: {exc.message}")
            return 1
    print(("error: " if result.is_error else "") + result.content[0].text)
    return 1 if result.is_error else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("to")
    parser.add_argument("--config", type=Path, default=Path(__file__).with_name("turnout-mcp.yaml"))
    args = parser.parse_args()
    sys.exit(anyio.run(main, args.to, args.config))
