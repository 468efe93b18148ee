"""`turnout cassette show FILE`: what a cassette holds, one line per recorded call;
`turnout cassette check FILE…`: whether hand-edited cassettes still follow the format."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from turnout.testing.cassette import Cassette, CassetteError


def _asked(request: dict[str, Any]) -> str:
    messages = request.get("messages") or []
    last = messages[-1] if messages else {"content": request.get("prompt")}
    text = last.get("content") if isinstance(last, dict) else last
    return str(text if text is not None else "(tool calls)").replace("\n", " ")


def _answered(entry: Any) -> str:
    if entry.completion is not None:
        choice = (entry.completion.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        calls = message.get("tool_calls") or []
        if calls:
            return "calls " + ", ".join(c["function"]["name"] for c in calls)
        return repr(str(message.get("content", choice.get("text")))[:60])
    if entry.events is not None:
        tail = f", then {entry.error['failure']}" if entry.error else ""
        return f"stream of {len(entry.events)} events{tail}"
    return f"failure {entry.error['failure'] if entry.error else '?'}"


def cmd_cassette_show(args: argparse.Namespace) -> int:
    try:
        cassette = Cassette.load(args.file)
    except CassetteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not cassette.existed:
        raise FileNotFoundError(f"no cassette at {args.file}")
    for e in cassette.recorded.values():
        r = e.request
        print(
            f"{e.key} #{e.repeat + 1}  {r.get('deployment')}  {r.get('model')}"
            f"{' stream' if r.get('stream') else ''}  asked {_asked(r)[:50]!r} → {_answered(e)}"
        )
    print(f"{len(cassette.recorded)} recorded calls")
    return 0


def cmd_cassette_check(args: argparse.Namespace) -> int:
    bad = 0
    for name in args.files:
        try:
            cassette = Cassette.load(name)
        except CassetteError as exc:
            print(exc, file=sys.stderr)
            bad += 1
            continue
        if not cassette.existed:
            print(f"{name}: no such file", file=sys.stderr)
            bad += 1
            continue
        print(f"{name}: ok, {len(cassette.recorded)} recorded calls")
    return 1 if bad else 0


def register(subparsers: Any) -> None:
    cassette = subparsers.add_parser("cassette", help="recorded model calls (turnout.testing)")
    sub = cassette.add_subparsers(dest="cassette_command", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="list what a cassette holds")
    show.add_argument("file")
    show.set_defaults(func=cmd_cassette_show)
    check = sub.add_parser("check", help="validate cassettes against the format (exit 1 if not)")
    check.add_argument("files", nargs="+")
    check.set_defaults(func=cmd_cassette_check)
