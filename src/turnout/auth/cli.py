"""`turnout keys {create,list,show,revoke,rotate}`: client keys in the config's store.

A running gateway sees a change within `auth.refresh_s`; the secret is printed once, at create
and rotate, and is nowhere else afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from typing import Any

import orjson

from turnout.auth import manage
from turnout.auth.keys import KeySpec, KeySpecError
from turnout.config import default_config, load_config
from turnout.store.keys import KeyRecord, KeyStore, open_keys


def _store_url(args: argparse.Namespace) -> str:
    if args.store:
        return str(args.store)
    path = args.config or os.environ.get("TURNOUT_CONFIG")
    return (load_config(path) if path else default_config()).store.url


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return dt.datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


def _spec(args: argparse.Namespace) -> KeySpec:
    metadata: dict[str, str] = {}
    for item in args.metadata or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise KeySpecError(f"--metadata: expected k=v; got {item!r}")
        metadata[name] = value
    raw = {
        "name": args.name,
        "models": args.models,
        "rpm": args.rpm,
        "tpm": args.tpm,
        "budget_usd": args.budget_usd,
        "budget_period": args.budget_period,
        "alert_at": args.alert_at,
        "expires": args.expires,
        "tenant": args.tenant,
        "priority": args.priority,
        "metadata": metadata,
    }
    return KeySpec.parse({k: v for k, v in raw.items() if v is not None})


def _limits(key: KeyRecord) -> str:
    parts = [f"{key.rpm} rpm" if key.rpm else "", f"{key.tpm} tpm" if key.tpm else ""]
    if key.budget_usd is not None:
        period = key.budget_period_s
        every = "ever" if period is None else f"{period / 86400:g}d"
        parts.append(f"${key.budget_usd:g}/{every}")
    return ", ".join(p for p in parts if p) or "-"


def _with_store(args: argparse.Namespace) -> KeyStore:
    return open_keys(_store_url(args))


def cmd_create(args: argparse.Namespace) -> int:
    spec = _spec(args)
    store = _with_store(args)
    try:
        key, secret = manage.create(store, spec)
    finally:
        store.close()
    if args.json:
        _print_json({"id": key.id, "key": secret, **key.public()})
        return 0
    print(f"created {key.id} ({key.name}); limits: {_limits(key)}")
    print(f"key: {secret}")
    print("this is the only time the key is shown: store it now")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _with_store(args)
    try:
        keys = store.all()
    finally:
        store.close()
    if args.json:
        _print_json([{**k.public(), "status": manage.status(k)} for k in keys])
        return 0
    if not keys:
        print("no client keys; create one with `turnout keys create --name NAME`")
        return 0
    from turnout.cli import _table

    rows = [
        [
            k.id,
            k.name,
            k.display,
            manage.status(k),
            ",".join(k.models) or "*",
            _limits(k),
            k.tenant or "-",
            k.priority,
            _when(k.expires),
        ]
        for k in keys
    ]
    header = ["id", "name", "key", "status", "models", "limits", "tenant", "priority", "expires"]
    print(_table(rows, header))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    url = _store_url(args)
    store = open_keys(url)
    try:
        info = manage.describe(store, url, args.id)
    finally:
        store.close()
    if args.json:
        _print_json(info)
        return 0
    period = info["period"]
    print(f"{info['id']}  {info['name']}  {info['display']}  {info['status']}")
    print(f"models    {', '.join(info['models']) or 'all'}")
    print(f"rpm/tpm   {info['rpm'] or '-'} / {info['tpm'] or '-'}")
    budget = info["budget_usd"]
    if budget is not None:
        alert = f", alert at {info['alert_at']:.0%}" if info["alert_at"] is not None else ""
        print(f"budget    ${budget:g} per period{alert}")
    print(f"tenant    {info['tenant'] or '-'}  priority {info['priority']}")
    print(f"expires   {_when(info['expires'])}")
    if info["metadata"]:
        print("metadata  " + "  ".join(f"{k}={v}" for k, v in info["metadata"].items()))
    print(
        f"\nsince {_when(period['start'])}: ${period['spent_usd']:.6f} spent, "
        f"{period['requests']} requests, {period['tokens']} tokens"
    )
    for row in info["by_model"]:
        print(
            f"  {row['model'] or '-':<24} {row['requests']:>6} requests  "
            f"{row['prompt_tokens']}+{row['completion_tokens']} tokens  ${row['cost_usd']:.6f}"
        )
    for event in info["events"]:
        print(f"  {_when(event['at'])}  {event['kind']}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    store = _with_store(args)
    try:
        key = manage.revoke(store, args.id)
    finally:
        store.close()
    if args.json:
        _print_json({**key.public(), "status": "revoked"})
    else:
        print(f"revoked {key.id} ({key.name}); running gateways refuse it within a second")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    store = _with_store(args)
    try:
        key, secret = manage.rotate(store, args.id)
    finally:
        store.close()
    if args.json:
        _print_json({"id": key.id, "key": secret, **key.public()})
        return 0
    print(f"rotated {key.id} ({key.name}); the old key stops working within a second")
    print(f"key: {secret}")
    print("this is the only time the key is shown: store it now")
    return 0


def register(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="client keys: models, rate limits, budgets")
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    def action(name: str, func: Any, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", help="config file whose store holds the keys")
        p.add_argument("--store", help="store URL, e.g. sqlite:///turnout.db")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)
        return p

    create = action("create", cmd_create, "create a key (printed once)")
    create.add_argument("--name", required=True)
    create.add_argument("--models", help="comma-separated models it may use (default: all)")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute (prompt + answer)")
    create.add_argument("--budget-usd", type=float, help="spend cap per budget period")
    create.add_argument("--budget-period", help="1d, 7d, 30d or never (default: never)")
    create.add_argument("--alert-at", type=float, help="soft alert at this fraction of budget")
    create.add_argument("--expires", help="e.g. 90d (default: never)")
    create.add_argument("--tenant", help="fair-share tenant its requests count against")
    create.add_argument("--priority", choices=("low", "normal", "high"))
    create.add_argument("--metadata", action="append", metavar="K=V", help="repeatable")
    action("list", cmd_list, "list keys (never their secrets)")
    for name, func, text in (
        ("show", cmd_show, "a key's limits, spend this period, requests and tokens by model"),
        ("revoke", cmd_revoke, "revoke a key"),
        ("rotate", cmd_rotate, "give a key a new secret; the old one stops working"),
    ):
        action(name, func, text).add_argument("id", help="key id (key_…)")
