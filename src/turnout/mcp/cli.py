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


def register(subparsers: Any) -> None:
    mcp = subparsers.add_parser("mcp", help="MCP tool supply-chain guard")
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
    _common(lock)
    lock.set_defaults(func=cmd_lock)

    approve = sub.add_parser("approve", help="trust what the guard is holding back")
    approve.add_argument("targets", nargs="+", metavar="SERVER[:TOOL]")
    approve.add_argument(
        "--live", action="store_true", help="pin what the server shows now, not what was seen"
    )
    _common(approve)
    approve.set_defaults(func=cmd_approve)

    diff = sub.add_parser("diff", help="what changed, in words: lock vs seen, or two lock files")
    diff.add_argument("targets", nargs="*", metavar="SERVER|LOCKFILE")
    diff.add_argument("--live", action="store_true", help="connect now and compare with the lock")
    _common(diff)
    diff.set_defaults(func=cmd_diff)


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
    if as_json:
        out = {
            "lines": report.lines,
            "changes": [c.as_json() for c in report.changes],
            "errors": report.errors,
        }
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    for line in report.lines:
        print(line)
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)


def cmd_lock(args: argparse.Namespace) -> int:
    from turnout.mcp.commands import lock_servers

    config = _config(args)
    report = anyio.run(lambda: lock_servers(config, args.servers, update=args.update))
    _print(report, args.json)
    return 2 if report.errors else 1 if report.changes else 0


def cmd_approve(args: argparse.Namespace) -> int:
    from turnout.mcp.commands import approve

    config = _config(args)
    report = anyio.run(lambda: approve(config, args.targets, live=args.live))
    _print(report, args.json)
    return 2 if report.errors else 0


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
    sys.stdout.write(render_json(result) if args.json else render_text(result))
    threshold = SEVERITIES.index(args.fail_on)
    if any(SEVERITIES.index(f.severity) >= threshold for f in result.findings):
        return 1
    return 2 if result.errors else 0
