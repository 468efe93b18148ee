"""`turnout migrate {replay,report}`: replay recorded traffic against a candidate, diff, gate."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from turnout.config import (
    Config,
    ConfigError,
    DeploymentConfig,
    Price,
    default_config,
    load_config,
)
from turnout.errors import TurnoutError
from turnout.lifecycle.states import TERMINAL
from turnout.migrate.analysis import RATES, Analysis, GateSettings, analyse
from turnout.migrate.family import rate_min_pairs
from turnout.migrate.gate import Outcome
from turnout.migrate.records import SelectionError, parse_since, select
from turnout.migrate.replay import Arm, Overrides, Replay, Replayer
from turnout.migrate.report import html_page, plot_png, report_json, summary_text
from turnout.migrate.sequential import MIN_LOOK, Look, last_level, replay_sequentially
from turnout.migrate.status import add_reset_parser, add_status_parser

FLAGGED, ERROR = 1, 2  # exit codes; 0: no --fail-on condition met
CHECKS = (
    "valid", "semantic_match", "format_match", "language_match", "refusal_match", "not_truncated",
    "tool_calls_match", "json_match", "semantic_distance", "latency_s", "cost_usd", "chars",
)  # fmt: skip
METRICS = (*RATES, "similarity", "errors", "distance_ratio", "latency_ratio", "cost_ratio",
           "length_ratio", "regressions", "pairs")  # fmt: skip
_CONDITION = re.compile(r"^([a-z_]+)\s*([<>])\s*([0-9.eE+-]+)$")


class _Failed(TurnoutError):
    """A command cannot go on; the message says why."""


def _config(args: argparse.Namespace) -> Config:
    path = args.config or os.environ.get("TURNOUT_CONFIG")
    return load_config(path) if path else default_config()


def _resolve(config: Config, name: str, flag: str) -> tuple[DeploymentConfig, bool]:
    """A deployment by name, or a logical model's primary deployment: (deployment, is_model)."""
    if name in config.deployments:
        return config.deployments[name], False
    if name in config.models:
        return config.deployments[config.models[name].deployments[0]], True
    known = ", ".join([*config.models, *config.deployments]) or "none"
    raise _Failed(
        f"{flag} {name!r}: no such model or deployment in {config.source} (known: {known})"
    )


def _parse_set(items: list[str] | None) -> tuple[tuple[str, Any], ...]:
    out = []
    for item in items or ():
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise _Failed(f"--set {item!r}: expected KEY=VALUE, e.g. temperature=0.7")
        try:
            parsed: Any = orjson.loads(value)
        except orjson.JSONDecodeError:
            parsed = value
        out.append((key.strip(), parsed))
    return tuple(out)


def check_fail_on(conditions: list[str] | None) -> list[str]:
    """Validate before any work is done: a typo must not cost a replay."""
    for cond in conditions or ():
        if cond in ("gate", "fail", "inconclusive") or cond in CHECKS:
            continue
        m = _CONDITION.match(cond)
        if not m or m.group(1) not in METRICS:
            raise _Failed(
                f"--fail-on {cond!r}: expected gate, fail, inconclusive, a check "
                f"({', '.join(CHECKS)}) or METRIC<N / METRIC>N with METRIC one of "
                f"{', '.join(METRICS)}"
            )
    return list(conditions or ())


def failures(a: Analysis, conditions: list[str]) -> list[str]:
    """The --fail-on conditions that hold, in words."""
    met = []
    verdicts = {v.check: v for v in a.gate.verdicts}
    metrics = a.metrics()
    for cond in conditions:
        if cond == "gate" and a.flagged:
            met.append(f"gate: {a.gate.summary()}")
        elif cond == "fail" and (
            bad := [v.check for v in verdicts.values() if v.outcome is Outcome.FAIL]
        ):
            met.append(f"fail: {', '.join(bad)} failed on their own")
        elif cond == "inconclusive" and a.gate.outcome is not Outcome.PASS:
            met.append(f"inconclusive: the gate is {a.gate.outcome.value}")
        elif cond in verdicts and verdicts[cond].outcome is Outcome.FAIL:
            met.append(f"{cond}: {verdicts[cond].explanation}")
        elif m := _CONDITION.match(cond):
            name, op, limit = m.group(1), m.group(2), float(m.group(3))
            value = metrics.get(name)
            if value is not None and (value < limit if op == "<" else value > limit):
                met.append(f"{cond}: {name} is {value:.4g}")
    return met


def _progress_bar(quiet: bool) -> Callable[[int, int, float], None] | None:
    if quiet:
        return None
    tty = sys.stderr.isatty()
    shown = [-1]

    def show(done: int, total: int, spent: float) -> None:
        width = 30
        filled = width * done // max(1, total)
        bar = "#" * filled + "." * (width - filled)
        line = f"replaying [{bar}] {done}/{total} requests ${spent:.6f}"
        if tty:
            print("\r" + line, end="\n" if done == total else "", file=sys.stderr, flush=True)
        elif (tenth := 10 * done // max(1, total)) != shown[0]:
            shown[0] = tenth
            print(line, file=sys.stderr, flush=True)

    return show


def _look_line(quiet: bool) -> Callable[[int, int, Look], None] | None:
    if quiet:
        return None

    def show(number: int, planned: int, look: Look) -> None:
        then = "continuing" if look.outcome == "inconclusive" else "stopping"
        after_bar = "\n" if sys.stderr.isatty() else ""  # the bar's line may still be open
        print(
            f"{after_bar}look {number}/{planned}: {look.pairs} pairs at α={look.alpha:.3g} → "
            f"{look.outcome.upper()} ({then})",
            file=sys.stderr,
            flush=True,
        )

    return show


def warn_unpriced(old: DeploymentConfig, new: DeploymentConfig, budget: float | None) -> str:
    """Said on stderr before a replay starts: without a price, cost is neither gated nor capped."""
    unpriced = [d.name for d in (old, new) if d.price == Price()]
    if not unpriced:
        return ""
    where = ", ".join(f"deployments.{n}.price" for n in dict.fromkeys(unpriced))
    text = f"warning: no price set ({where}): "
    if len(set(unpriced)) == len({old.name, new.name}):
        text += "the cost check is left out of the gate"
        if budget is not None:
            text += f" and --budget-usd {budget:g} cannot stop the replay (it counts $0)"
    else:
        text += "that arm counts as free, in the cost check and in --budget-usd"
    return text


async def _replay(args: argparse.Namespace, config: Config) -> tuple[Replay, Analysis | None]:
    from turnout.gateway import make_backend

    old_dep, old_is_model = _resolve(config, args.from_, "--from")
    new_dep, _ = _resolve(config, args.to, "--to")
    if warning := warn_unpriced(old_dep, new_dep, args.budget_usd):
        print(warning, file=sys.stderr, flush=True)
    overrides = Overrides(system=args.system, params=_parse_set(args.set))
    since = parse_since(args.since) if args.since else None
    outcomes = tuple(o.strip() for o in args.outcome.split(",") if o.strip())
    known = sorted(s.value for s in TERMINAL)
    if bad := [o for o in outcomes if o not in known]:
        raise _Failed(f"--outcome {', '.join(bad)}: not a terminal state ({', '.join(known)})")
    records = select(
        args.store or config.store.url,
        models=(args.from_,) if old_is_model else (),
        deployments=() if old_is_model else (args.from_,),
        since=since,
        outcomes=outcomes,
        sample=args.sample,
        seed=args.seed,
    )
    old_backend = make_backend(old_dep)
    new_backend = old_backend if new_dep.name == old_dep.name else make_backend(new_dep)
    backends = {id(b): b for b in (old_backend, new_backend)}
    for b in backends.values():
        await b.start()
    try:
        replayer = Replayer(
            Arm(args.from_, old_backend, old_dep.price),
            Arm(args.to, new_backend, new_dep.price, overrides),
            budget_usd=args.budget_usd,
            concurrency=args.concurrency or 2 * max(1, new_dep.max_concurrency or 1),
            seed=args.seed,
            progress=_progress_bar(args.quiet),
        )
        analysis = None
        if args.sequential:
            replay, analysis = await replay_sequentially(
                replayer, records, _settings(args), min_look=args.min_look, seed=args.seed,
                on_look=_look_line(args.quiet),
            )  # fmt: skip
        else:
            replay = await replayer.run(records)
    finally:
        for b in backends.values():
            await b.close()
    if not replay.pairs:
        raise _Failed(f"nothing was replayed ({replay.note or 'no requests'})")
    return replay, analysis


def _settings(args: argparse.Namespace) -> GateSettings:
    s = GateSettings(
        alpha=args.alpha,
        margin=args.margin,
        distance_margin=args.distance_margin,
        latency_margin=args.latency_margin,
        cost_margin=args.cost_margin,
        length_margin=args.length_margin,
    )
    if not 0 < s.alpha < 0.5:
        raise _Failed(f"--alpha {s.alpha}: must be in (0, 0.5)")
    if not 0 <= s.margin < 1:
        raise _Failed(f"--margin {s.margin}: a tolerated drop in pass rate, in [0, 1)")
    for flag, v, top in (
        ("distance", s.distance_margin, 100.0),
        ("latency", s.latency_margin, 100.0),
        ("cost", s.cost_margin, 100.0),
        ("length", s.length_margin, 1.0),
    ):
        if not 0 < v < top:
            raise _Failed(f"--{flag}-margin {v}: a relative change in (0, {top:g})")
    return s


def _finish(
    args: argparse.Namespace,
    replay: Replay,
    analysis: Analysis | None = None,
    store_url: str | None = None,
) -> int:
    if analysis is None:
        settings = _settings(args)
        if replay.sequential:  # judged again at its last look's level, not at the full α
            level = last_level(settings.alpha, replay.sequential, len(replay.pairs))
            settings = dataclasses.replace(settings, alpha=level)
        analysis = analyse(replay, settings)
    met = failures(analysis, args.fail_on or [])
    if args.html:
        png = plot_png(analysis)
        Path(args.html).write_text(html_page(analysis, png, met), encoding="utf-8")
        if store_url is not None:
            _note_report(store_url, args, len(replay.pairs), analysis, met)
    if args.json:
        sys.stdout.write(
            orjson.dumps(report_json(analysis, met), option=orjson.OPT_INDENT_2).decode() + "\n"
        )
    else:
        print(summary_text(analysis))
        for m in met:
            print(f"fail-on: {m}")
        if args.html:
            print(f"\nreport: {args.html}")
    return FLAGGED if met else 0


def _note_report(
    url: str, args: argparse.Namespace, pairs: int, analysis: Analysis, met: list[str]
) -> None:
    """Where the HTML report is, as a migration event: the console links it from there."""
    from turnout.migrate.events import EventLog
    from turnout.store.errors import StoreError

    detail = {
        "path": str(Path(args.html).resolve()),
        "pairs": pairs,
        "gate": analysis.gate.outcome.value,
        "fail_on": met,
    }
    log = EventLog(url)
    try:
        log.open()
        log.append(args.from_, "replay", args.to, "report", detail=detail)
    except StoreError as exc:  # the report is written; only the console's link is missing
        print(f"note: the report is not listed in the record ({exc})", file=sys.stderr)
    finally:
        log.close()


def cmd_replay(args: argparse.Namespace) -> int:
    check_fail_on(args.fail_on)
    _settings(args)
    if args.sample is not None and args.sample < 1:
        raise _Failed(f"--sample {args.sample}: must be at least 1")
    if args.budget_usd is not None and args.budget_usd <= 0:
        raise _Failed(f"--budget-usd {args.budget_usd}: must be positive")
    if args.min_look < 1:
        raise _Failed(f"--min-look {args.min_look}: must be at least 1")
    config = _config(args)
    out = Path(args.out or f"migrate-{_slug(args.from_)}-to-{_slug(args.to)}.jsonl")
    replay, analysis = asyncio.run(_replay(args, config))
    replay.write(out)
    if not args.json:
        print(f"pairs: {out}")
    return _finish(args, replay, analysis, config.store.url)


def cmd_report(args: argparse.Namespace) -> int:
    check_fail_on(args.fail_on)
    path = Path(args.pairs)
    if not path.exists():
        raise _Failed(f"no replay file at {path}")
    try:
        replay = Replay.read(path)
    except ValueError as exc:
        raise _Failed(str(exc)) from None
    if not replay.pairs:
        raise _Failed(f"{path} holds no pairs: nothing to compare")
    return _finish(args, replay)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Errors exit 2, so that 1 always means a --fail-on condition held."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (_Failed, SelectionError, ConfigError, FileNotFoundError) as exc:
            print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            return ERROR

    return run


def _reporting(p: argparse.ArgumentParser) -> None:
    p.add_argument("--html", help="write an HTML report with plots")
    p.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    p.add_argument(
        "--fail-on", action="append", metavar="COND",
        help="exit 1 if COND holds: gate | fail | inconclusive | CHECK | METRIC<N | METRIC>N "
        "(repeatable), e.g. --fail-on gate --fail-on 'semantic_match<0.8'",
    )  # fmt: skip
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise α of the gate (0.05)")
    p.add_argument("--margin", type=float, default=0.05, help="tolerated pass-rate drop (0.05)")
    p.add_argument(
        "--distance-margin", type=float, default=0.20,
        help="tolerated growth of the semantic distance to the recorded answer (0.20)",
    )  # fmt: skip
    p.add_argument("--latency-margin", type=float, default=0.25, help="tolerated slow-down (0.25)")
    p.add_argument("--cost-margin", type=float, default=0.10, help="tolerated cost rise (0.10)")
    p.add_argument(
        "--length-margin", type=float, default=0.25, help="tolerated length change (0.25)"
    )


def register(subparsers: Any) -> None:
    mig = subparsers.add_parser(
        "migrate", help="replay recorded traffic against a candidate; canary and shadow status"
    )
    sub = mig.add_subparsers(dest="migrate_command", required=True, metavar="ACTION")

    rp = sub.add_parser(
        "replay",
        help="replay recorded requests to the old model and a candidate",
        description="Send each selected recorded request twice — to the old model again and to "
        "the candidate — and gate the switch. Costs 2 calls per request (both arms priced by "
        "their deployments' `price`; unpriced arms count $0 and leave the cost check out). "
        f"A PASS needs at least {rate_min_pairs(0.05, 0.05)} pairs at the default --margin and "
        "--alpha; fewer can FAIL but not PASS. With --sequential the replay stops as soon as the "
        "gate decides.",
    )
    rp.add_argument("--from", dest="from_", required=True, metavar="MODEL",
                    help="the recorded model (logical) or deployment")  # fmt: skip
    rp.add_argument(
        "--to", required=True, metavar="CANDIDATE", help="the candidate deployment (or model)"
    )
    rp.add_argument("--config", help="config file (default: $TURNOUT_CONFIG, else embedded)")
    rp.add_argument("--store", help="record store sqlite:///PATH (default: the config's)")
    rp.add_argument(
        "--sample", type=int,
        help="replay a random sample of N requests (default: every selected request); with "
        "--sequential, the most it may replay",
    )  # fmt: skip
    rp.add_argument("--since", help="only requests since: 30m, 2h, 7d, an ISO time, a timestamp")
    rp.add_argument(
        "--outcome", default="completed,truncated",
        help="recorded outcomes to replay, comma-separated (default completed,truncated: the "
        "requests that got an answer; '' for any)",
    )  # fmt: skip
    rp.add_argument("--concurrency", type=int, help="requests in flight (both arms together)")
    rp.add_argument(
        "--budget-usd", type=float,
        help="stop before spending more than this, both arms together (needs a price on the "
        "deployments: unpriced calls count $0)",
    )  # fmt: skip
    rp.add_argument(
        "--seed", type=int,
        help="seeds the sample, the order of a --sequential replay and every request that sets "
        "no seed of its own — the same seed in both arms, so a same-model candidate answers as "
        "the old model's rerun does (default: unseeded, each arm samples afresh)",
    )  # fmt: skip
    rp.add_argument(
        "--sequential", action="store_true",
        help="replay in looks (halving back from --sample: e.g. 15, 30, 60) and stop at the "
        "first PASS or FAIL; α is spent across the looks (α·t³)",
    )  # fmt: skip
    rp.add_argument(
        "--min-look", type=int, default=MIN_LOOK,
        help=f"with --sequential: the smallest look, in pairs (default {MIN_LOOK})",
    )  # fmt: skip
    rp.add_argument("--system", help="candidate only: replace the system prompt with this")
    rp.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="candidate only: set a request field, e.g. temperature=0.7")  # fmt: skip
    rp.add_argument("--out", help="pairs file (JSONL; default migrate-FROM-to-TO.jsonl)")
    rp.add_argument("--quiet", action="store_true", help="no progress bar")
    _reporting(rp)
    rp.set_defaults(func=_guarded(cmd_replay))

    add_status_parser(sub)  # the gateway's canaries and shadows, from the record
    add_reset_parser(sub)

    rep = sub.add_parser("report", help="diff and gate a replay file again (other margins, HTML)")
    rep.add_argument("pairs", help="a replay's pairs file (JSONL)")
    _reporting(rep)
    rep.set_defaults(func=_guarded(cmd_report))
