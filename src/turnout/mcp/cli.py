"""`turnout mcp {proxy,scan,lock,approve,diff}`: the MCP tool supply-chain guard."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import orjson

from turnout.config import ConfigError

CONFIG_ENV = "TURNOUT_MCP_CONFIG"
DEFAULT_CONFIG = "turnout-mcp.yaml"

WORKFLOW = """\
The guard stands between an MCP client and its servers. It pins what each server is (its
package), what its tools say (their definitions) and what each tool sends out (the shape of
its HTTP requests), and holds back whatever changes until a person approves it.

workflow:
  1. turnout mcp scan claude_desktop_config.json      look for poisoned tools, offline
  2. turnout mcp lock --config turnout-mcp.yaml       pin every server in mcp.lock
  3. in the client's config, run each server through the guard:
       "mail": {"command": "turnout",
                "args": ["mcp", "proxy", "--config", "/abs/path/turnout-mcp.yaml", "mail"]}
  4. when the guard refuses something (a tool call fails with `turnout: ...`):
       turnout mcp diff mail                           what changed, in words
       turnout mcp approve mail:send_email             trust it (the proxy picks it up)
  5. turnout requests --config turnout-mcp.yaml       every call, refusal and held tool

Relative paths in the config (lock, store) are taken from the config's folder. By default
(egress: enforce) a tool's first outbound request is held until approved; servers that are
not Node show HTTPS requests by host only. Each ACTION has its own --help.
"""


def register(subparsers: Any) -> None:
    mcp = subparsers.add_parser(
        "mcp",
        help="MCP tool supply-chain guard",
        description=WORKFLOW,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = mcp.add_subparsers(dest="mcp_command", required=True, metavar="ACTION")

    proxy = sub.add_parser("proxy", help="run the guard between an MCP client and its servers")
    proxy.add_argument("server", nargs="?", help="the server to stand in for (stdio)")
    proxy.add_argument("--http", metavar="HOST:PORT", help="serve every server at /mcp/NAME")
    _common(proxy)
    proxy.set_defaults(func=cmd_proxy)

    scan = sub.add_parser("scan", help="start each server of a client config, flag poisoning")
    scan.add_argument("files", nargs="+", metavar="CONFIG", help="mcpServers / servers JSON, YAML")
    scan.add_argument("--server", action="append", default=[], help="only this server (repeat)")
    scan.add_argument(
        "--fail-on",
        choices=("low", "medium", "high"),
        default="medium",
        help="exit 1 when a finding is at least this severe (default: medium)",
    )
    scan.add_argument("--timeout", type=float, default=60.0, help="seconds per server")
    scan.add_argument(
        "--pass-env", action="append", default=[], help="pass this variable to servers (repeat)"
    )
    scan.add_argument("--json", action="store_true", help="machine-readable output")
    scan.set_defaults(func=cmd_scan)

    lock = sub.add_parser("lock", help="pin servers' packages and tool definitions in mcp.lock")
    lock.add_argument("servers", nargs="*", metavar="SERVER")
    lock.add_argument("--update", action="store_true", help="re-pin servers that changed")
    _accept(lock)
    _common(lock)
    lock.set_defaults(func=cmd_lock)

    approve = sub.add_parser("approve", help="trust what the guard is holding back")
    approve.add_argument("targets", nargs="+", metavar="SERVER[:TOOL]")
    approve.add_argument(
        "--live", action="store_true", help="pin what the server shows now, not what was seen"
    )
    _accept(approve)
    _common(approve)
    approve.set_defaults(func=cmd_approve)

    diff = sub.add_parser("diff", help="what changed, in words: lock vs seen, or two lock files")
    diff.add_argument("targets", nargs="*", metavar="SERVER|LOCKFILE")
    diff.add_argument("--live", action="store_true", help="connect now and compare with the lock")
    _common(diff)
    diff.set_defaults(func=cmd_diff)


def _accept(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accept-findings",
        action="store_true",
        help="pin definitions even when the scanner calls them poisoned (a high finding)",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help=f"guard config (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})")
    p.add_argument(
        "--lock", help="lock file (default: the config's `lock`, else mcp.lock beside it)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-v", "--verbose", action="store_true")


def _config(args: argparse.Namespace, required: bool = True) -> Any:
    from dataclasses import replace

    from turnout.mcp.config import load_guard_config

    path = args.config or os.environ.get(CONFIG_ENV)
    if path is None and (required or Path(DEFAULT_CONFIG).exists()):
        path = DEFAULT_CONFIG
    if path is None:
        return None
    config = load_guard_config(path)
    if getattr(args, "lock", None):
        config = replace(config, lock_path=Path(args.lock).resolve())
    return config


def _logging(args: argparse.Namespace) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpx2", "mcp", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_proxy(args: argparse.Namespace) -> int:
    from turnout.mcp.proxy import main_stdio, serve_http

    _logging(args)
    config = _config(args)
    if args.http:
        host, _, port = args.http.rpartition(":")
        if not port.isdigit():
            raise ConfigError("--http", "", f"expected HOST:PORT, got {args.http!r}")
        serve_http(config, host or "127.0.0.1", int(port))
        return 0
    return main_stdio(config, args.server)


def _print(report: Any, as_json: bool) -> None:
    """Every line names the characters that would hide or rewrite text on a terminal."""
    from turnout.mcp.visible import json_visible, visible

    if as_json:
        out = {
            "lines": report.lines,
            "changes": [c.as_json() for c in report.changes],
            "errors": report.errors,
            "held": report.held,
        }
        text = orjson.dumps(out, option=orjson.OPT_INDENT_2).decode()
        sys.stdout.write(json_visible(text) + "\n")
        return
    for line in report.lines:
        print(visible(line))
    for error in report.errors:
        print(f"error: {visible(error)}", file=sys.stderr)


def cmd_lock(args: argparse.Namespace) -> int:
    from turnout.mcp.commands import lock_servers

    config = _config(args)
    report = anyio.run(
        lambda: lock_servers(
            config, args.servers, update=args.update, accept_findings=args.accept_findings
        )
    )
    _print(report, args.json)
    return 2 if report.errors else 1 if report.changes or report.held else 0


def cmd_approve(args: argparse.Namespace) -> int:
    from turnout.mcp.commands import approve

    config = _config(args)
    report = anyio.run(
        lambda: approve(config, args.targets, live=args.live, accept_findings=args.accept_findings)
    )
    _print(report, args.json)
    return 2 if report.errors else 1 if report.held else 0


def cmd_diff(args: argparse.Namespace) -> int:
    from turnout.mcp.commands import diff

    two_files = len(args.targets) == 2 and all(Path(t).is_file() for t in args.targets)
    config = None if two_files else _config(args)
    report = anyio.run(lambda: diff(config, args.targets, live=args.live))
    _print(report, args.json)
    if report.errors:
        return 2
    return 1 if report.changes else 0


def cmd_scan(args: argparse.Namespace) -> int:
    from turnout.mcp.scanner.report import render_json, render_text
    from turnout.mcp.scanner.scan import SEVERITIES, scan_configs

    result = anyio.run(
        lambda: scan_configs(
            [Path(f) for f in args.files],
            only=args.server,
            timeout=args.timeout,
            pass_env=tuple(args.pass_env),
        )
    )
    sys.stdout.write(render_json(result) if args.json else render_text(result))  # sanitised
    threshold = SEVERITIES.index(args.fail_on)
    if any(SEVERITIES.index(f.severity) >= threshold for f in result.findings):
        return 1
    return 2 if result.errors else 0
