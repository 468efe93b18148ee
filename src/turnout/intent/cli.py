"""`turnout intent report`: answers that missed what users meant, by model, prompt, route, key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson


def register(sub: Any) -> None:
    intent = sub.add_parser("intent", help="answers that missed what users meant")
    isub = intent.add_subparsers(dest="intent_command", required=True, metavar="ACTION")
    report = isub.add_parser("report", help="miss rates per group, with intervals and alarms")
    report.add_argument("--config", help="config file whose store to read")
    report.add_argument("--store", help="store URL, e.g. sqlite:///turnout.db")
    report.add_argument("--since", default="7d", help="30m, 2h, 7d, an ISO date (default 7d)")
    report.add_argument(
        "--by", choices=("model", "deployment", "prompt", "route", "key"), default="model"
    )
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.add_argument("--html", metavar="FILE", help="also write an HTML page")
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from turnout.cli import _store_url
    from turnout.intent.report import build, html_page, text
    from turnout.migrate.records import SelectionError, parse_since
    from turnout.store.read import open_reader

    try:
        since = parse_since(args.since)
    except SelectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with open_reader(_store_url(args)) as reader:
        report = build(
            reader.conversations(since=since, bodies=True), reader.feedback(since=since), args.by
        )
    if args.html:
        Path(args.html).write_text(html_page(report))
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(text(report))
    return 0
