"""Silent model-swap detection: statistical fingerprints of the model behind every endpoint.

Probe a deployment with a suite of prompts (`collect`), keep a run as a named baseline, and
`compare` later runs with it: an MMD test over completions (Gao, Liang & Guestrin, ICLR 2025),
typicality and agreement of openings (dispersion), cheap signals (length, failed/empty/refused
answers, metadata, latency) and log-probabilities where served, combined under Holm's procedure
so the false-alarm rate is at most α. `Watcher` does this on a schedule
inside the gateway, and watches the record passively with CUSUM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from turnout.fingerprint.compare import IncomparableRuns, compare
from turnout.fingerprint.drill import TamperedBackend
from turnout.fingerprint.evidence import Evidence
from turnout.fingerprint.runner import Budget, ProbeRunner, collect
from turnout.fingerprint.samples import ProbeRun, Sample
from turnout.fingerprint.settings import WatchSettings, WatchTarget, parse_watch
from turnout.fingerprint.store import FingerprintStore
from turnout.fingerprint.suite import Probe, Sampling, Suite, builtin_suite, load_suite
from turnout.fingerprint.verdict import Verdict
from turnout.fingerprint.watch import Watcher

if TYPE_CHECKING:
    from turnout.gateway import Gateway


async def start_watch(gateway: Gateway) -> Watcher | None:
    """Start the gateway's fingerprint watch, if one is configured; None otherwise."""
    watcher = Watcher.for_gateway(gateway)
    if watcher is not None:
        await watcher.start()
    return watcher


__all__ = [
    "Budget",
    "Evidence",
    "FingerprintStore",
    "IncomparableRuns",
    "Probe",
    "ProbeRun",
    "ProbeRunner",
    "Sample",
    "Sampling",
    "Suite",
    "TamperedBackend",
    "Verdict",
    "WatchSettings",
    "WatchTarget",
    "Watcher",
    "builtin_suite",
    "collect",
    "compare",
    "load_suite",
    "parse_watch",
    "start_watch",
]
