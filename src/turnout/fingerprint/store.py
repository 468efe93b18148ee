"""Probe runs, baselines, checks and alarms, kept through the store's fingerprint tables.

They live in the record's store by default (one file to back up); `--store` names another.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from turnout.errors import TurnoutError
from turnout.fingerprint.samples import ProbeRun, Sample
from turnout.store.fingerprints import AlarmRecord, CheckRecord, open_fingerprints

__all__ = ["AlarmRecord", "CheckRecord", "FingerprintStore", "NoSuchBaseline"]


class NoSuchBaseline(TurnoutError, LookupError):
    pass


class FingerprintStore:
    """Synchronous and thread-safe; call it through asyncio.to_thread on an event loop."""

    def __init__(self, url_or_path: str | Path) -> None:
        self._tables = open_fingerprints(url_or_path)

    def close(self) -> None:
        self._tables.close()

    def __enter__(self) -> FingerprintStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs --------------------------------------------------------------------------------

    def save_run(self, run: ProbeRun) -> None:
        head = {
            f.name: getattr(run, f.name) for f in dataclasses.fields(run) if f.name != "samples"
        }
        self._tables.save_run(head, [dataclasses.asdict(s) for s in run.samples])

    def load_run(self, run_id: str) -> ProbeRun:
        found = self._tables.load_run(run_id)
        if found is None:
            raise LookupError(f"no probe run {run_id!r}")
        head, samples = found
        return ProbeRun(**head, samples=[Sample(**s) for s in samples])

    def runs(self, deployment: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self._tables.runs(deployment, limit)

    def latest_run(self, deployment: str) -> str | None:
        return self._tables.latest_run(deployment)

    # -- baselines ---------------------------------------------------------------------------

    def set_baseline(self, name: str, run_id: str, deployment: str) -> None:
        self._tables.set_baseline(name, run_id, deployment, time.time())

    def baseline_run_id(self, name: str) -> str:
        run_id = self._tables.baseline_run_id(name)
        if run_id is None:
            known = ", ".join(b["name"] for b in self.baselines()) or "none stored"
            raise NoSuchBaseline(f"no baseline named {name!r} (known: {known})")
        return run_id

    def baseline(self, name: str) -> ProbeRun:
        return self.load_run(self.baseline_run_id(name))

    def baselines(self) -> list[dict[str, Any]]:
        return self._tables.baselines()

    # -- checks and alarms -------------------------------------------------------------------

    def save_check(self, check: CheckRecord) -> None:
        self._tables.save_check(check)

    def checks(self, deployment: str | None = None, limit: int = 1000) -> list[CheckRecord]:
        """Oldest first, the last `limit` of them."""
        return self._tables.checks(deployment, limit)

    def save_alarm(self, alarm: AlarmRecord, term: int | None = None) -> bool:
        """False when a newer term of the fleet's leadership refused it."""
        return self._tables.save_alarm(alarm, term)

    def alarms(self, deployment: str | None = None, limit: int = 1000) -> list[AlarmRecord]:
        return self._tables.alarms(deployment, limit)

    def deployments(self) -> list[str]:
        return self._tables.deployments()
