"""`turnout fingerprint {probe,baseline,check,watch,report}`: silent model-swap detection."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from turnout.config import Config, ConfigError, DeploymentConfig, default_config, load_config
from turnout.errors import TurnoutError
from turnout.fingerprint.compare import ALPHA, IncomparableRuns, compare
from turnout.fingerprint.report import (
    history_text,
    html_page,
    plot_png,
    report_json,
    since_when,
    verdict_text,
)
from turnout.fingerprint.runner import Budget, ProbeRunner
from turnout.fingerprint.samples import ProbeRun
from turnout.fingerprint.settings import WatchSettings, WatchTarget, load_watch
from turnout.fingerprint.store import FingerprintStore, NoSuchBaseline
from turnout.fingerprint.suite import Suite, resolve_suite
from turnout.fingerprint.verdict import Verdict

CHANGED, ERROR = 1, 2  # exit codes; 0 means no change detected

ABOUT = """\
A baseline probes a deployment with a suite of prompts and stores what came back; a check probes
it again and tests whether the answers still come from the same model, prompt and settings.

What a probe sends (the built-in suite): 25 short prompts (8 languages, code, JSON, arithmetic,
yes/no, multiple choice, dialogue) as text completions to POST /v1/completions; with --chat, each
as one user turn to POST /v1/chat/completions (for chat-only endpoints: a baseline and its checks
must use the same). Every request: temperature 1.0, top_p 1.0, max_tokens 32, seeded with --seed.

What it costs:
  baseline  20 completions a prompt: 500 requests
  check     half its baseline's: 10 a prompt, 250 requests
  both      + 1 request to learn whether log-probabilities are served; where they are, 50 greedy
            one-token requests (2 a prompt) and the sampled tokens' log-probabilities
  tokens    a prompt is ~16 tokens and an answer at most 32: a check is at most ~12,000 tokens
            (at $0.15/$0.60 per million input/output tokens, under $0.006), a baseline twice that
  time      seconds to a minute against a hosted API at --concurrency 4; minutes on a CPU model
            (a check of the embedded SmolLM2-135M took ~15 min on two busy cores)
--samples-per-probe, --probes, --max-tokens and --max-samples/--max-cost make it smaller.

The verdict combines every test (MMD over completions, typicality, agreement of openings,
length, failed/empty/refused answers, metadata, log-probabilities where served) with Holm's
procedure at α = 0.05: a false alarm on an unchanged deployment has probability at most α.
Exit codes: 0 no change detected, 1 changed, 2 error.
"""


class _Failed(TurnoutError):
    """A command cannot go on; the message says why."""


def _config(args: argparse.Namespace) -> Config:
    path = args.config or os.environ.get("TURNOUT_CONFIG")
    return load_config(path) if path else default_config()


def _store(args: argparse.Namespace, config: Config) -> FingerprintStore:
    return FingerprintStore(args.store or config.store.url)


def _deployment(config: Config, name: str) -> DeploymentConfig:
    if name not in config.deployments:
        known = ", ".join(config.deployments) or "none"
        raise _Failed(f"no deployment {name!r} in {config.source} (known: {known})")
    return config.deployments[name]


def _progress(label: str) -> Callable[[int, int], None]:
    """Progress on stderr: a rewritten line on a terminal; elsewhere a line per tenth, and at least
    one every ten seconds (a 500-sample baseline on a CPU model takes minutes)."""
    tty = sys.stderr.isatty()
    started = time.monotonic()
    last = {"tenth": -1, "at": started}

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        took = now - started
        left = f", ~{_duration(took / done * (total - done))} left" if 0 < done < total else ""
        line = f"{label}: {done}/{total} requests, {_duration(took)}{left}"
        if tty:
            end = "\n" if done >= total else ""
            print(f"\r{line}\033[K", end=end, file=sys.stderr, flush=True)
            return
        tenth = 10 * done // max(1, total)
        if tenth != last["tenth"] or now - last["at"] >= 10 or done >= total:
            last.update(tenth=tenth, at=now)
            print(line, file=sys.stderr, flush=True)

    return show


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


async def _probe(
    args: argparse.Namespace, config: Config, deployment: str, like: ProbeRun | None = None
) -> ProbeRun:
    """Probe `deployment`; with `like`, send what that run sent unless told otherwise."""
    from turnout.gateway import make_backend

    dep = _deployment(config, deployment)
    if like is not None and like.suite_spec is not None and args.suite is None:
        suite = Suite.from_spec(like.suite_spec)
    else:
        suite = resolve_suite(args.suite)
    suite = suite.with_options(
        samples_per_probe=args.samples_per_probe,
        max_tokens=args.max_tokens,
        probes=args.probes,
        chat=args.chat,
    )
    backend = make_backend(dep)
    await backend.start()
    try:
        runner = ProbeRunner(
            backend,
            suite,
            deployment=deployment,
            price=dep.price,
            budget=Budget(max_samples=args.max_samples, max_cost_usd=args.max_cost),
            concurrency=args.concurrency or dep.max_concurrency or 4,
            seed=args.seed,
            progress=None if args.quiet else _progress(f"probing {deployment}"),
        )
        run = await runner.run()
    finally:
        await backend.close()
    if not run.completions():
        first = next((s.error for s in run.samples if s.error), "no samples were planned")
        raise _Failed(f"{deployment}: no completions came back ({first})")
    return run


def _run_summary(run: ProbeRun) -> str:
    n = len(run.completions())
    took = (run.ended or run.started) - run.started
    extra = f"; {run.note}" if run.note else ""
    errs = f", {run.errors} failed" if run.errors else ""
    logp = f", {len(run.logprob_samples())} with logprobs" if run.logprob_samples() else ""
    return (
        f"run {run.id}: {run.deployment}, suite {run.suite}, {n} completions{logp}{errs}, "
        f"{run.tokens} tokens, ${run.cost_usd:.6f}, {took:.1f} s{extra}"
    )


def _emit_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def cmd_probe(args: argparse.Namespace) -> int:
    config = _config(args)
    run = asyncio.run(_probe(args, config, args.deployment))
    with _store(args, config) as store:
        store.save_run(run)
    if args.json:
        _emit_json({"run_id": run.id, "summary": _run_summary(run)})
    else:
        print(_run_summary(run))
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(args, config) as store:
        if args.list or args.name is None:
            rows = store.baselines()
            if args.json:
                _emit_json(rows)
            else:
                for b in rows:
                    print(f"{b['name']:<20} {b['deployment']:<16} run {b['run_id']}")
                if not rows:
                    print("no baselines stored")
            return 0
        if args.run:
            run = store.load_run(args.run)
        else:
            if args.samples_per_probe is None:
                # A baseline is paid for once: twice the suite's samples per probe (20 for the
                # built-in suite) makes every later check more sensitive.
                args.samples_per_probe = 2 * resolve_suite(args.suite).samples_per_probe
            run = asyncio.run(_probe(args, config, args.deployment or args.name))
            store.save_run(run)
        store.set_baseline(args.name, run.id, run.deployment)
    if args.json:
        _emit_json({"baseline": args.name, "run_id": run.id, "summary": _run_summary(run)})
    else:
        print(_run_summary(run))
        print(f"baseline {args.name!r} → run {run.id}")
    return 0


def _write_html(
    path: str,
    title: str,
    verdict: Verdict | None,
    store: FingerprintStore,
    deployment: str | None,
    alpha: float,
) -> None:
    checks = store.checks(deployment)
    alarms = store.alarms(deployment)
    png = plot_png(checks, alpha, title) if checks else None
    Path(path).write_text(
        html_page(title=title, verdict=verdict, checks=checks, alarms=alarms, png=png, alpha=alpha),
        encoding="utf-8",
    )
    if png is not None:
        Path(path).with_suffix(".png").write_bytes(png)


def cmd_check(args: argparse.Namespace) -> int:
    from turnout.fingerprint.runner import new_id
    from turnout.fingerprint.store import CheckRecord

    config = _config(args)
    name = args.baseline or args.deployment
    with _store(args, config) as store:
        baseline = store.baseline(name)
        if args.run:
            run = store.load_run(args.run)
        else:
            if args.samples_per_probe is None:
                # Half the baseline's: 10 a probe (250 completions) for the built-in suite.
                per_probe = int(baseline.sampling.get("samples_per_probe", 20))
                args.samples_per_probe = max(2, per_probe // 2)
            run = asyncio.run(_probe(args, config, args.deployment, like=baseline))
            store.save_run(run)
        verdict = compare(baseline, run, alpha=args.alpha, seed=args.seed)
        check = CheckRecord(
            new_id("chk"),
            time.time(),
            args.deployment,
            name,
            run.id,
            verdict.changed,
            verdict.min_p,
            verdict.as_dict(),
        )
        store.save_check(check)
        since = since_when(store.checks(args.deployment))
        if args.html:
            title = f"fingerprint: {args.deployment} vs baseline {name}"
            _write_html(args.html, title, verdict, store, args.deployment, args.alpha)
    if args.json:
        _emit_json(
            {
                **verdict.as_dict(),
                "deployment": args.deployment,
                "baseline": name,
                "since": since,
                "check_id": check.id,
            }
        )
    else:
        if not args.run:
            print(_run_summary(run))
        print(verdict_text(verdict, deployment=args.deployment, baseline=name, since=since))
        if args.html:
            print(f"\nreport: {args.html}")
    return CHANGED if verdict.changed else 0


def _watch_settings(args: argparse.Namespace, config: Config) -> WatchSettings:
    if args.watch:
        settings = load_watch(args.watch)
    elif config.fingerprint.enabled:
        settings = config.fingerprint
    else:
        settings = WatchSettings(alpha=args.alpha)
    if args.deployment:
        target = WatchTarget(
            deployment=args.deployment,
            baseline=args.baseline or args.deployment,
            suite=args.suite,
            every_s=args.every,
            samples=args.samples,
            max_cost_usd=args.max_cost,
        )
        others = tuple(t for t in settings.targets if t.deployment != args.deployment)
        settings = WatchSettings(**{**_fields(settings), "targets": (*others, target)})
    if args.passive and settings.passive is None:
        from turnout.fingerprint.settings import PassiveSettings

        settings = WatchSettings(**{**_fields(settings), "passive": PassiveSettings()})
    if not settings.enabled:
        raise _Failed("nothing to watch: give --deployment, or --watch FILE with deployments")
    return settings


def _fields(settings: WatchSettings) -> dict[str, Any]:
    return {f: getattr(settings, f) for f in settings.__dataclass_fields__}


async def _watch(args: argparse.Namespace, config: Config, settings: WatchSettings) -> int:
    from turnout.fingerprint.watch import Watcher
    from turnout.gateway import make_backend

    deps = {t.deployment: _deployment(config, t.deployment) for t in settings.targets}
    backends = {name: make_backend(dep) for name, dep in deps.items()}
    for b in backends.values():
        await b.start()
    alarms: list[Any] = []
    watcher = Watcher(
        settings,
        backends=backends,
        store=FingerprintStore(args.store or settings.store or config.store.url),
        prices={n: d.price for n, d in deps.items()},
        concurrency={n: d.max_concurrency or settings.concurrency for n, d in deps.items()},
        record_url=config.store.url,
        on_alarm=alarms.append,
    )
    try:
        if args.cycles == 0:
            await watcher.start()
            await asyncio.Event().wait()  # until interrupted
        every = min((t.every_s for t in settings.targets), default=60.0)
        for cycle in range(args.cycles):
            if cycle:
                await asyncio.sleep(every)
            for name in watcher.targets:
                check = await watcher.check(name)
                if check is not None and not args.json:
                    print(f"[cycle {cycle + 1}] {name}: {check.verdict['summary']}", flush=True)
            await watcher.scan_passive()
    finally:
        with contextlib.suppress(Exception):
            await watcher.stop()
        for b in backends.values():
            await b.close()
    raised = [a for a in alarms if a.kind in ("raised", "passive")]
    if args.json:
        _emit_json(
            [
                {
                    "at": a.at,
                    "deployment": a.deployment,
                    "kind": a.kind,
                    "message": a.message,
                    "detail": a.detail,
                }
                for a in alarms
            ]
        )
    else:
        for a in alarms:
            print(a.message)
    return CHANGED if raised else 0


def cmd_watch(args: argparse.Namespace) -> int:
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = _config(args)
    settings = _watch_settings(args, config)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_watch(args, config, settings))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(args, config) as store:
        checks = store.checks(args.deployment)
        alarms = store.alarms(args.deployment)
        last = Verdict.from_dict(checks[-1].verdict) if checks else None
        if args.html:
            title = f"fingerprint: {args.deployment or 'all deployments'}"
            _write_html(
                args.html, title, last, store, args.deployment, last.alpha if last else ALPHA
            )
    if args.json:
        _emit_json(report_json(last, checks, alarms))
        return 0
    if last is not None:
        c = checks[-1]
        print(
            verdict_text(
                last, deployment=c.deployment, baseline=c.baseline, since=since_when(checks)
            )
        )
        print()
    print(history_text(checks, alarms))
    if args.html:
        print(f"\nreport: {args.html}")
    return 0


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Errors exit 2, so that `check`'s 1 always means a detected change."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (_Failed, NoSuchBaseline, IncomparableRuns, ConfigError, LookupError) as exc:
            print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            return ERROR

    return run


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="config file (default: $TURNOUT_CONFIG, else embedded)")
    p.add_argument("--store", help="fingerprint store: sqlite:///PATH (default: the record's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _probing(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", help="builtin (default) or a YAML suite file")
    p.add_argument(
        "--samples-per-probe",
        type=int,
        help="completions per prompt (baseline: 20, check: half its baseline's)",
    )
    p.add_argument("--probes", type=int, help="use only the suite's first N probes")
    p.add_argument("--max-tokens", type=int, help="override the suite's max_tokens (32)")
    p.add_argument("--max-samples", type=int, help="budget: at most N completions")
    p.add_argument("--max-cost", type=float, help="budget: at most this many USD")
    p.add_argument(
        "--concurrency",
        type=int,
        help="requests at a time (the deployment's max_concurrency, or 4)",
    )
    p.add_argument("--seed", type=int, help="seed requests (and permutations) reproducibly")
    p.add_argument(
        "--chat",
        action="store_true",
        help="send prompts as chat user turns to /v1/chat/completions (default: /v1/completions)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def register(subparsers: Any) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    fp = subparsers.add_parser(
        "fingerprint",
        help="silent model-swap detection",
        description="Silent model-swap detection.\n\n" + ABOUT,
        formatter_class=raw,
    )
    sub = fp.add_subparsers(dest="fingerprint_command", required=True, metavar="ACTION")

    probe = sub.add_parser("probe", help="collect a probe run from a deployment and store it")
    probe.add_argument("deployment")
    _common(probe)
    _probing(probe)
    probe.set_defaults(func=_guarded(cmd_probe))

    base = sub.add_parser(
        "baseline",
        help="store a named fingerprint (probe now, or name a run)",
        description="Probe a deployment (500 requests with the built-in suite) and store the run\n"
        "as a named baseline.\n\n" + ABOUT,
        formatter_class=raw,
    )
    base.add_argument("name", nargs="?", help="baseline name (default deployment: the same)")
    base.add_argument("--deployment", help="deployment to probe (default: NAME)")
    base.add_argument("--run", help="name an existing probe run instead of probing")
    base.add_argument("--list", action="store_true", help="list stored baselines")
    _common(base)
    _probing(base)
    base.set_defaults(func=_guarded(cmd_baseline))

    check = sub.add_parser(
        "check",
        help="test a deployment against its baseline now; exit 1 if it changed",
        description="Probe a deployment (250 requests with the built-in suite, sent exactly as\n"
        "its baseline's were) and judge the answers against the baseline.\n\n" + ABOUT,
        formatter_class=raw,
    )
    check.add_argument("deployment")
    check.add_argument("--baseline", help="baseline name (default: the deployment's name)")
    check.add_argument("--run", help="judge an existing probe run instead of probing")
    check.add_argument("--alpha", type=float, default=ALPHA, help="false-alarm rate (0.05)")
    check.add_argument("--html", help="also write an HTML report (and a PNG beside it)")
    _common(check)
    _probing(check)
    check.set_defaults(func=_guarded(cmd_check))

    watch = sub.add_parser("watch", help="scheduled checks (and passive monitoring) with alarms")
    watch.add_argument(
        "--watch",
        help="YAML watch settings (a `fingerprint:` section; default: the config's own)",
    )
    watch.add_argument("--deployment", help="watch this deployment (with the options below)")
    watch.add_argument("--baseline", help="its baseline (default: the deployment's name)")
    watch.add_argument("--suite", help="a suite (default: the one its baseline was made with)")
    watch.add_argument("--every", type=float, default=3600.0, help="seconds between checks")
    watch.add_argument("--samples", type=int, default=50, help="completions per check")
    watch.add_argument("--max-cost", type=float, help="USD per check")
    watch.add_argument("--alpha", type=float, default=ALPHA, help="per-check α (0.05)")
    watch.add_argument("--passive", action="store_true", help="also run CUSUM over the record")
    watch.add_argument("--cycles", type=int, default=0, help="stop after N cycles (0: never)")
    _common(watch)
    watch.set_defaults(func=_guarded(cmd_watch))

    report = sub.add_parser("report", help="checks over time, alarms, the latest verdict")
    report.add_argument("deployment", nargs="?")
    report.add_argument("--html", help="write an HTML report (and a PNG beside it)")
    _common(report)
    report.set_defaults(func=_guarded(cmd_report))
