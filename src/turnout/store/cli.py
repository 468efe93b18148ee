"""`turnout store`: bring a record's schema up to date, or copy a record into another store."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from turnout.store.location import describe


def _url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    from turnout.cli import _load

    return _load(args.config).store.url


def cmd_migrate(args: argparse.Namespace) -> int:
    from turnout.store.versions import migrate

    url = _url(args)
    applied = migrate(url)
    if not applied:
        print(f"{describe(url)}: the schema is up to date")
    for step in applied:
        print(f"{describe(url)}: applied {step.describe()}")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from turnout.store.copy import copy_record

    shown: dict[str, int] = {}

    def progress(table: str, done: int, total: int) -> None:
        # A line per table when it starts and ends, and every tenth of a long one in between.
        step = max(total // 10, 1)
        if done in (0, total) or done // step != shown.get(table, -1):
            shown[table] = done // step
            print(f"  {table}: {done}/{total} rows", file=sys.stderr, flush=True)

    print(f"copying {describe(args.src)} → {describe(args.dst)}", file=sys.stderr)
    copied = copy_record(args.src, args.dst, progress)
    total = sum(copied.values())
    print(f"copied {total} rows in {len(copied)} tables into {describe(args.dst)}")
    return 0


def register(sub: Any) -> None:
    store = sub.add_parser("store", help="the record store: schema migrations, copies")
    ssub = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    migrate = ssub.add_parser("migrate", help="apply the schema migrations the store lacks")
    migrate.add_argument("--url", help="store URL (default: the config's store.url)")
    migrate.add_argument("--config", help="config file whose store to migrate")
    migrate.set_defaults(func=cmd_migrate)
    copy = ssub.add_parser(
        "copy", help="copy a whole record into a new store (SQLite ↔ PostgreSQL)"
    )
    copy.add_argument("src", help="source store URL, e.g. sqlite:///turnout.db")
    copy.add_argument("dst", help="destination store URL, e.g. postgresql://user@host/db")
    copy.set_defaults(func=cmd_copy)
