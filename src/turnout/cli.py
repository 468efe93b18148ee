"""The `turnout` command: one entry point, a sub-command per area."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from turnout.auth.keys import KeySpecError
from turnout.config import Config, ConfigError, default_config, load_config
from turnout.store.errors import StoreError


def _load(path: str | None) -> Config:
    path = path or os.environ.get("TURNOUT_CONFIG")
    return load_config(path) if path else default_config()


def _store_url(args: argparse.Namespace) -> str:
    if args.store:
        return str(args.store)
    try:
        return _load(args.config).store.url
    except ConfigError:
        # The MCP guard's config names a store too: its tool calls are read the same way.
        from turnout.mcp.config import guard_store_url

        path = args.config or os.environ.get("TURNOUT_CONFIG")
        url = guard_store_url(path) if path else None
        if url is None:
            raise
        return url


def cmd_serve(args: argparse.Namespace) -> int:
    from turnout.auth.bind import UnsafeBind
    from turnout.gateway import Gateway
    from turnout.server.app import App
    from turnout.server.serve import serve
    from turnout.server.workers import refusal
    from turnout.store.writer import RecordWriter

    config = _load(args.config)
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    workers = config.server.workers if args.workers is None else args.workers
    refused = refusal(config, workers, bool(args.record or args.cassette_mode))
    if refused is not None:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    models = ", ".join(f"{m} → {'/'.join(c.deployments)}" for m, c in config.models.items())
    logging.getLogger("turnout").info("config %s; models: %s", config.source, models)
    wrap = None
    if args.record or args.cassette_mode:
        from turnout.testing.serve import cassette_wrapper

        wrap = cassette_wrapper(args.record, args.cassette_mode)
    try:
        # Before anything loads: an unwritable store is a plain message, not a traceback.
        RecordWriter.for_store(config.store).check()
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # The bind the gateway really gets decides whether it may run without keys.
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, host=host))
    try:
        if workers > 1:
            from turnout.auth.bind import auth_mode
            from turnout.server.workers import serve_workers

            mode = auth_mode(config.auth, host)  # each worker's gateway would refuse alike
            path = args.config or os.environ.get("TURNOUT_CONFIG")
            return serve_workers(config, path, host, port, workers, mode)
        gateway = Gateway(config, wrap_backend=wrap)
    except UnsafeBind as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    serve(App(gateway), config.server, host, port)
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    deps, models = ", ".join(config.deployments), ", ".join(config.models)
    watch = config.fingerprint
    watched = ", ".join(t.deployment for t in watch.targets) or "passive only"
    extra = f"; fingerprint watch: {watched}" if watch.enabled else ""
    print(f"{args.file}: ok — deployments: {deps}; models: {models}{extra}")
    return 0


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="milliseconds")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def cmd_requests(args: argparse.Namespace) -> int:
    from turnout.store.query import list_requests

    rows = list_requests(
        _store_url(args), limit=args.limit, outcome=args.outcome, model=args.model, key_id=args.key
    )
    if args.json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    header = [
        "id",
        "started",
        "model",
        "wire",
        "outcome",
        "status",
        "attempts",
        "deployments",
        "tokens",
        "cost $",
        "latency ms",
        "key",
        "migration",
    ]
    table = [
        [
            r["id"],
            _when(r["started"]),
            r["model"] or "-",
            _wire(r.get("wire"), r.get("wire_out")),
            r["outcome"],
            str(r["http_status"] or "-"),
            str(r["attempts"]),
            ",".join(r["deployments"]) or "-",
            f"{r['prompt_tokens']}+{r['completion_tokens']}",
            f"{r['cost_usd']:.6f}",
            "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f}",
            r.get("key_id") or "-",
            _migration_role(r.get("migration")),
        ]
        for r in rows
    ]
    print(_table(table, header) if table else "no requests recorded")
    return 0


def _wire(wire_in: str | None, wire_out: str | None) -> str:
    """The format the client spoke, and the upstream's where it differed."""
    if not wire_in:
        return "-"
    return wire_in if wire_out in (None, wire_in) else f"{wire_in}→{wire_out}"


def _migration_role(migration: dict[str, Any] | None) -> str:
    """Which side of a model migration a request was on: shadows stand apart from traffic."""
    if not migration:
        return "-"
    if "shadow_of" in migration:
        return f"shadow of {migration['shadow_of']}"
    canary = migration.get("canary")
    if canary:
        return f"canary {canary['arm']} @{canary['percent']:g}%"
    return "shadowed" if "shadow" in migration else "-"


def _attrs(attrs: dict[str, Any]) -> str:
    return "  ".join(f"{k}={v}" for k, v in attrs.items())


def cmd_trace(args: argparse.Namespace) -> int:
    from turnout.store.query import get_request

    rec = get_request(_store_url(args), args.id)
    if args.json:
        sys.stdout.write(orjson.dumps(rec, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    wire_out = (rec.get("attrs") or {}).get("wire_out")
    print(
        f"request {rec['id']}  model {rec['model'] or '-'}  {rec['operation']}"
        f"{' (stream)' if rec['stream'] else ''}  wire {_wire(rec.get('wire'), wire_out)}"
    )
    print(
        f"outcome {rec['outcome']}  http {rec['http_status']}  attempts {rec['attempts']}  "
        f"tokens {rec['prompt_tokens']}+{rec['completion_tokens']}  cost ${rec['cost_usd']:.6f}"
        f"  latency {rec['latency_ms']} ms  ttft {rec['ttft_ms'] or '-'} ms"
    )
    if rec["error"]:
        print(f"error   {rec['error']}")
    print()
    t0 = rec["started"]
    for event in rec["events"]:
        offset = (event["at"] - t0) * 1000
        print(f"  +{offset:9.2f} ms  {event['state']:<16} {_attrs(event.get('attrs', {}))}")
    if rec["attempt_log"]:
        print("\nattempts")
        for a in rec["attempt_log"]:
            took = (a.get("ended", a["started"]) - a["started"]) * 1000
            print(
                f"  #{a['number']} {a['deployment']:<12} {a.get('error') or 'ok':<18} "
                f"{took:8.1f} ms  tokens {a['prompt_tokens']}+{a['completion_tokens']}  "
                f"cost ${a['cost_usd']:.6f}  finish {a.get('finish_reason') or '-'}"
            )
    return 0


# Capability packages add their own sub-commands: each module has `register(subparsers)`.
_EXTENSIONS = (
    "turnout.plan.cli",
    "turnout.mcp.cli",
    "turnout.testing.cli",
    "turnout.sim.cli",
    "turnout.fingerprint.cli",
    "turnout.migrate.cli",
    "turnout.auth.cli",
    "turnout.intent.cli",
    "turnout.store.cli",
)


def _register_extensions(sub: Any) -> None:
    import importlib

    for name in _EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that capability is not part of this build
            raise
        module.register(sub)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="turnout", description="A control plane for LLM traffic.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="config file (default: $TURNOUT_CONFIG, else embedded)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="serving processes on the one port (default: server.workers, 1); more than one "
        "needs state.url",
    )
    serve.add_argument(
        "--record", metavar="DIR", help="record model calls to a cassette in DIR (or a .json file)"
    )
    serve.add_argument(
        "--cassette-mode",
        choices=("none", "once", "new_episodes", "all"),
        help="with --record: none replays only; the others record (default: new_episodes)",
    )
    serve.set_defaults(func=cmd_serve)

    config = sub.add_parser("config", help="config files")
    csub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = csub.add_parser("check", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)

    for name, func, text in (
        ("requests", cmd_requests, "list recorded requests"),
        ("trace", cmd_trace, "one request's lifecycle"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--config", help="config file whose store to read")
        cmd.add_argument("--store", help="store URL, e.g. sqlite:///turnout.db")
        cmd.add_argument("--json", action="store_true", help="machine-readable output")
        cmd.set_defaults(func=func)
        if name == "requests":
            cmd.add_argument("--limit", type=int, default=20)
            cmd.add_argument("--outcome")
            cmd.add_argument("--model")
            cmd.add_argument("--key", help="only requests made with this client key id")
        else:
            cmd.add_argument("id", help="request id (or a unique prefix)")
    _register_extensions(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, LookupError, StoreError, KeySpecError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
