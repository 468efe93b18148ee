"""The MCP tool supply-chain guard: pin, diff, scan and proxy the tool servers an agent uses.

    turnout mcp scan claude_desktop_config.json    # poisoning findings, offline; exit 1 on any
    turnout mcp lock --config turnout-mcp.yaml      # pin packages and tool definitions: mcp.lock
    turnout mcp proxy --config turnout-mcp.yaml NAME   # stdio, in place of the server NAME
    turnout mcp proxy --config turnout-mcp.yaml --http 127.0.0.1:8701   # /mcp/NAME for each
    turnout mcp diff [NAME | OLD.lock NEW.lock] [--live]
    turnout mcp approve NAME[:TOOL] [--live] [--accept-findings]

The config is a client's `mcpServers` (or VS Code `servers`) file, with turnout's keys added:

    lock: mcp.lock                          # beside the config unless absolute
    store: {url: "sqlite:///turnout.db"}    # where every tool call is recorded
    mcpServers:
      postmark:
        command: npx
        args: [-y, postmark-mcp]
        env: {POSTMARK_SERVER_TOKEN: "${env:POSTMARK_SERVER_TOKEN}"}
        guard:
          egress: enforce                   # off | record | enforce: pin what each tool sends out
          egress_first_use: hold            # hold | learn: a first request waits for approval
          unpinned: pin                     # pin | block: trust a server on first use or not
          pass_env: [HTTPS_PROXY]           # variables passed through (none by default)
          deny: [delete_everything]         # or allow: [...]
          validate_arguments: true          # check arguments against the pinned input schema
          call_timeout_s: 120
          tools:
            send_email:
              args:
                To: {email_domains: [example.com]}
                Attachments[].Path: {path_prefixes: [/srv/outbox]}
"""

from turnout.mcp.config import GuardConfig, ServerSpec, load_guard_config
from turnout.mcp.guard import GUARD_REFUSED, Guard
from turnout.mcp.lockfile import LockFile, Observation, ServerPin
from turnout.mcp.relay import Relay

__all__ = [
    "GUARD_REFUSED",
    "Guard",
    "GuardConfig",
    "LockFile",
    "Observation",
    "Relay",
    "ServerPin",
    "ServerSpec",
    "load_guard_config",
]
