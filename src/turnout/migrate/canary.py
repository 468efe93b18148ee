"""Canary: a weighted split between a model's deployments and a candidate, stepped up by the gate.

Each stage sends `percent` of new conversations to the candidate (first, with the old deployments
as its fallbacks) and the rest to the old deployments, and collects both arms' outcomes side by
side. The gate (`evidence.judge`) decides: FAIL rolls back to the old model at once, with an alarm
(an event in the record, a metric, a log line); PASS, once the stage has `min_requests_per_stage`
candidate requests and `min_stage_s` seconds, promotes to the next stage; still undecided after
`max_requests_per_stage`, it rolls back too. Conversations are sticky: a conversation stays on the
arm it started on while the canary runs (a rollback overrides that). Stages, their evidence and the
outcome are migration events in the record; a restarted gateway resumes the stage it was in and
rebuilds the stage's evidence from the record.

In a fleet (`state.url`), one replica decides: `turnout.fleet.canary` judges the whole fleet's
evidence from the record on the leader and publishes each stage for every replica to `follow`;
a replica's own observations then only feed its metrics.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from turnout.config import ModelConfig
from turnout.config.schema import CanaryConfig
from turnout.lifecycle.run import Run
from turnout.migrate.events import EventLog, MigrationEvent
from turnout.migrate.evidence import (
    Observation,
    counts,
    judge,
    look_alpha,
    observe_record,
    observe_run,
)
from turnout.migrate.family import Family
from turnout.migrate.gate import Outcome
from turnout.routing.router import conversation_id
from turnout.store.errors import NoRecordStore
from turnout.store.read import open_reader

log = logging.getLogger("turnout.migrate")

RUNNING, ROLLED_BACK, COMPLETED = "running", "rolled_back", "completed"
_FLOOR = 5  # candidate and old requests before the gate is asked at all
_PINS = 100_000  # conversations remembered for stickiness


class CanaryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.percent = Gauge(
            "turnout_canary_percent",
            "Share of new conversations the candidate takes now (0 after a rollback)",
            ["model", "candidate"],
            registry=r,
        )
        self.stage = Gauge(
            "turnout_canary_stage", "Current stage, from 1", ["model", "candidate"], registry=r
        )
        self.rolled_back = Gauge(
            "turnout_canary_rolled_back",
            "1 while the canary stands rolled back: the alarm",
            ["model", "candidate"],
            registry=r,
        )
        self.requests = Counter(
            "turnout_canary_requests",
            "Canary requests by arm and whether the arm answered",
            ["model", "candidate", "arm", "result"],
            registry=r,
        )
        self.transitions = Counter(
            "turnout_canary_transitions",
            "Stage changes: promoted, rolled_back, completed",
            ["model", "candidate", "kind"],
            registry=r,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """A decision of the gate, not yet taken: where the canary goes and what it rests on."""

    kind: str  # promoted | rolled_back | completed
    status: str
    stage: int
    since: float
    detail: dict[str, Any]
    why: str  # the gate's summary, or the reason of a rollback

    def published(self) -> dict[str, Any]:
        """What the fleet's replicas follow."""
        return {"kind": self.kind, "status": self.status, "stage": self.stage, "since": self.since}


def bucket(candidate: str, conversation: str) -> float:
    """A conversation's fixed place in [0, 100): the same arm at the same stage, even after a
    restart."""
    digest = hashlib.sha256(f"{candidate}\0{conversation}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


class Canary:
    def __init__(
        self,
        model: ModelConfig,
        events: EventLog,
        metrics: CanaryMetrics,
        rng: random.Random,
    ) -> None:
        assert model.canary is not None
        self.config: CanaryConfig = model.canary
        self.name = model.name
        self.candidate = self.config.deployment
        self.old_model = dataclasses.replace(model, canary=None)
        # The candidate first; the old deployments stay behind it as fallbacks.
        self.candidate_model = dataclasses.replace(
            model,
            deployments=(self.candidate, *model.deployments),
            routing="ordered",
            canary=None,
        )
        self._events = events
        self._metrics = metrics
        self._rng = rng
        self.fleet = False  # True: the fleet's leader decides, through turnout.fleet.canary
        self.version = 0  # of the stage the fleet published last and this replica follows
        self.status = RUNNING
        self.stage = 0
        self.since = time.time()
        self.old: collections.deque[Observation] = self._window()
        self.cand: collections.deque[Observation] = self._window()
        self.last: Family | None = None
        self._judged_at = 0
        self._timed = False
        self._pins: collections.OrderedDict[str, str] = collections.OrderedDict()
        # Answers of this stage that a later turn showed missed; None: intent is not watched.
        self.missed: set[str] | None = set() if model.intent.detect else None

    def _window(self) -> collections.deque[Observation]:
        return collections.deque(maxlen=self.config.max_requests_per_stage)

    @property
    def percent(self) -> float:
        if self.status == ROLLED_BACK:
            return 0.0
        if self.status == COMPLETED:
            return 100.0
        return self.config.stages[self.stage]

    # -- state in the record ------------------------------------------------------------------

    def resume(self, last: MigrationEvent | None, url: str) -> None:
        if last is None or last.kind == "reset":
            if not self.fleet:  # in a fleet, the leader announces it, once
                self.announce_start()
        elif last.kind == "rolled_back":
            self.status, self.stage, self.since = ROLLED_BACK, last.stage or 0, last.at
        elif last.kind == "completed":
            self.status, self.stage, self.since = COMPLETED, len(self.config.stages) - 1, last.at
        else:  # started or promoted: carry on with that stage and what it has seen so far
            self.stage = min(last.stage or 0, len(self.config.stages) - 1)
            self.since = last.at
            self.reload(url)
            log.info(
                "canary of %s on %s resumed at stage %d (%g%%) with %d candidate and %d old "
                "requests of evidence",
                self.name,
                self.candidate,
                self.stage + 1,
                self.percent,
                len(self.cand),
                len(self.old),
            )
        self._show()

    def reload(self, url: str) -> None:
        """The stage's evidence as the record has it (every replica's requests, in a fleet)."""
        stage = stage_observations(url, self.name, self.candidate, self.stage, self.since)
        before: Iterable[Observation] = ()
        if self.percent >= 100 and self.stage > 0:  # the baseline is the stage before
            before = stage_observations(url, self.name, self.candidate, self.stage - 1, 0)
        self.take(stage, before)

    def take(self, stage: Iterable[Observation], before: Iterable[Observation] = ()) -> None:
        old, cand = self._window(), self._window()
        old.extend(o for o in before if o.arm == "old")
        for obs in stage:
            (cand if obs.arm == "candidate" else old).append(obs)
        self.old, self.cand = old, cand  # whole windows: readers never see one half-filled

    def announce_start(self, decision: str | None = None, term: int | None = None) -> None:
        self._announce("started", self.start_detail(), decision, term)

    def start_detail(self) -> dict[str, Any]:
        return {"settings": self._settings()}

    def _settings(self) -> dict[str, Any]:
        c = self.config
        return {
            "stages": list(c.stages),
            "min_requests_per_stage": c.min_requests_per_stage,
            "max_requests_per_stage": c.max_requests_per_stage,
            "min_stage_s": c.min_stage_s,
            "gate": dataclasses.asdict(c.gate),
        }

    def _announce(
        self,
        kind: str,
        detail: dict[str, Any] | None = None,
        decision: str | None = None,
        term: int | None = None,
    ) -> None:
        """`decision` and `term`: a fleet's decision (`turnout.fleet.canary`)."""
        self._events.append(
            self.name,
            "canary",
            self.candidate,
            kind,
            stage=self.stage,
            percent=self.percent,
            detail=detail,
            decision=decision,
            term=term,
        )

    def _show(self) -> None:
        labels = (self.name, self.candidate)
        self._metrics.percent.labels(*labels).set(self.percent)
        self._metrics.stage.labels(*labels).set(self.stage + 1)
        self._metrics.rolled_back.labels(*labels).set(1 if self.status == ROLLED_BACK else 0)

    # -- placement ----------------------------------------------------------------------------

    def arm_for(self, conversation: str | None) -> str:
        if self.status == ROLLED_BACK:
            return "old"
        pinned = self._pins.get(conversation) if conversation else None
        if pinned is not None:
            self._pins.move_to_end(conversation)  # type: ignore[arg-type]
            return pinned
        u = bucket(self.candidate, conversation) if conversation else self._rng.random() * 100
        arm = "candidate" if u < self.percent else "old"
        if conversation:
            self._pins[conversation] = arm
            while len(self._pins) > _PINS:
                self._pins.popitem(last=False)
        return arm

    def place(self, run: Run, body: Mapping[str, Any], headers: Mapping[str, str]) -> ModelConfig:
        arm = self.arm_for(conversation_id(body, headers))
        run.migration["canary"] = {
            "candidate": self.candidate,
            "arm": arm,
            "stage": self.stage,
            "percent": self.percent,
            "status": self.status,
        }
        return self.candidate_model if arm == "candidate" else self.old_model

    # -- evidence and decisions ---------------------------------------------------------------

    def observe(self, run: Run) -> None:
        placed = run.migration.get("canary")
        if placed is None or placed["candidate"] != self.candidate:
            return
        obs = observe_run(run, self.candidate)
        if obs is None:
            return
        self._metrics.requests.labels(
            self.name, self.candidate, obs.arm, "ok" if obs.ok else "failed"
        ).inc()
        if not self.fleet:
            self.add(obs, placed["stage"])

    def add(self, obs: Observation, stage: int) -> None:
        """One request's evidence, placed under `stage`; the gate is asked when due."""
        if self.status != RUNNING or stage != self.stage:
            return  # placed under an earlier stage: evidence for that one, not this
        (self.cand if obs.arm == "candidate" else self.old).append(obs)
        if self._due():
            self._take(self.decide())

    def miss(self, request_id: str) -> None:
        """A later turn showed that answer `request_id` missed; judged now if it is evidence."""
        if self.missed is None or self.status != RUNNING or request_id in self.missed:
            return
        if any(o.request_id == request_id for arm in (self.cand, self.old) for o in arm):
            self.missed.add(request_id)
            if not self.fleet and len(self.cand) >= _FLOOR and len(self.old) >= _FLOOR:
                self._take(self.decide())

    def due(self) -> bool:
        return self.status == RUNNING and self._due()

    def _take(self, t: Transition | None) -> None:
        if t is not None:
            self.apply(t)

    def _due(self) -> bool:
        n = len(self.cand)
        if n < _FLOOR or len(self.old) < _FLOOR:
            return False
        c = self.config
        timed = n >= c.min_requests_per_stage and time.time() - self.since >= c.min_stage_s
        if timed and not self._timed:
            self._timed = True
            return True
        # Every new candidate request while evidence is thin, then every ~2% more of them.
        return n > self._judged_at and (n <= 50 or n - self._judged_at >= n // 50)

    def decide(self) -> Transition | None:
        """The gate's answer on the evidence now, as a transition to take; None: carry on."""
        self._judged_at = len(self.cand)
        alpha = look_alpha(self.config.gate, len(self.config.stages))
        verdict = self.last = judge(self.old, self.cand, self.config.gate, alpha, self.missed)
        c = self.config
        enough = len(self.cand) >= c.min_requests_per_stage
        long_enough = time.time() - self.since >= c.min_stage_s
        if verdict.outcome is Outcome.FAIL:
            return self._roll_back(verdict, verdict.summary())
        if verdict.outcome is Outcome.PASS and enough and long_enough:
            return self._promote(verdict)
        if len(self.cand) >= c.max_requests_per_stage and long_enough:
            return self._roll_back(
                verdict,
                f"non-inferiority not shown after {len(self.cand)} candidate requests: "
                + verdict.summary(),
            )
        return None

    def evidence(self, verdict: Family | None = None) -> dict[str, Any]:
        v = verdict or self.last
        return {
            "candidate": counts(self.cand, self.missed),
            "old": counts(self.old, self.missed),
            "stage_s": round(time.time() - self.since, 3),
            "gate": None if v is None else v.as_dict(),
        }

    def _promote(self, verdict: Family) -> Transition:
        evidence = self.evidence(verdict)
        if self.stage + 1 >= len(self.config.stages):
            return Transition("completed", COMPLETED, self.stage, self.since, evidence, "")
        return Transition(
            "promoted", RUNNING, self.stage + 1, time.time(), evidence, verdict.summary()
        )

    def _roll_back(self, verdict: Family, reason: str) -> Transition:
        evidence = self.evidence(verdict)
        evidence["reason"] = reason
        evidence["from_percent"] = self.percent
        return Transition("rolled_back", ROLLED_BACK, self.stage, self.since, evidence, reason)

    def apply(
        self,
        t: Transition,
        *,
        record: bool = True,
        decision: str | None = None,
        term: int | None = None,
    ) -> None:
        """Take a decision: the new stage, its event in the record (unless `record` is False:
        somebody else wrote it), the metrics and a log line."""
        previous, stage_before = self.percent, self.stage
        self._enter(t.status, t.stage, t.since)
        if record:
            self._announce(t.kind, t.detail, decision, term)
        self._metrics.transitions.labels(self.name, self.candidate, t.kind).inc()
        if t.kind == "completed":
            log.info(
                "canary of %s on %s completed: the candidate passed every stage",
                self.name,
                self.candidate,
            )
        elif t.kind == "promoted":
            log.info(
                "canary of %s on %s promoted from %g%% to %g%%: %s",
                self.name,
                self.candidate,
                previous,
                self.percent,
                t.why,
            )
        else:
            log.error(
                "ALARM canary of %s on %s rolled back at stage %d (%g%%) to the old model: %s",
                self.name,
                self.candidate,
                stage_before + 1,
                previous,
                t.why,
            )

    def _enter(self, status: str, stage: int, since: float) -> None:
        if status == RUNNING and stage != self.stage:
            self.stage, self.since = stage, since
            # At 100% the old arm gets no new traffic: the last stage's old requests stay its
            # baseline.
            self.old = self.old if self.percent >= 100 else self._window()
            self.cand = self._window()
            if self.missed is not None:
                kept = {o.request_id for o in self.old}
                self.missed &= kept
            self._judged_at = 0
            self._timed = False
        self.status, self.stage, self.since = status, stage, since
        self._show()

    def follow(self, version: int, published: Mapping[str, Any]) -> bool:
        """Adopt the stage the fleet's leader published; True when it changed anything."""
        if version <= self.version:
            return False
        self.version = version
        if (published["status"], published["stage"]) == (self.status, self.stage):
            return False
        self._enter(published["status"], published["stage"], published["since"])
        log.info(
            "canary of %s on %s follows the fleet: stage %d (%g%%), %s",
            self.name,
            self.candidate,
            self.stage + 1,
            self.percent,
            self.status,
        )
        return True

    def restart(self, since: float) -> None:
        """From the first stage again, with no evidence (a reset canary)."""
        self.old, self.cand = self._window(), self._window()
        self._judged_at, self._timed = 0, False
        self.stage = -1  # so that entering stage 0 starts it afresh
        self._enter(RUNNING, 0, since)

    def published(self) -> dict[str, Any]:
        return {"kind": "resumed", "status": self.status, "stage": self.stage, "since": self.since}

    def status_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "status": self.status,
            "stage": self.stage + 1,
            "stages": list(self.config.stages),
            "percent": self.percent,
            **self.evidence(),
        }


def stage_observations(
    url: str, model: str, candidate: str, stage: int, since: float
) -> list[Observation]:
    """A stage's evidence, read back from the record (restart, `turnout migrate status`)."""
    try:
        reader = open_reader(url)
    except NoRecordStore:
        return []
    with reader:
        rows = reader.canary_stage(model, candidate, stage, since)
    return [obs for row in rows if (obs := observe_record(row, candidate)) is not None]


class Canaries:
    def __init__(
        self,
        models: Mapping[str, ModelConfig],
        registry: CollectorRegistry,
        events: EventLog,
        url: str,
        rng: random.Random | None = None,
    ) -> None:
        self.metrics = CanaryMetrics(registry)
        self._events = events
        self._url = url
        rng = rng or random.Random()
        self._canaries = {
            name: Canary(m, events, self.metrics, rng)
            for name, m in models.items()
            if m.canary is not None
        }

    def start(self) -> None:
        for c in self._canaries.values():
            c.resume(self._events.latest(c.name, "canary", c.candidate), self._url)

    def all(self) -> list[Canary]:
        return list(self._canaries.values())

    def place(
        self, run: Run, model: ModelConfig, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> ModelConfig:
        c = self._canaries.get(model.name)
        return model if c is None else c.place(run, body, headers)

    def observe(self, run: Run) -> None:
        c = self._canaries.get(run.model)
        if c is not None:
            c.observe(run)

    def miss(self, model: str, request_id: str) -> None:
        c = self._canaries.get(model)
        if c is not None:
            c.miss(request_id)

    def label(self, run: Run, headers: dict[str, str]) -> None:
        """`x-turnout-route` says canary, the arm and the stage."""
        placed = run.migration.get("canary")
        if placed is None:
            return
        c = self._canaries[run.model]
        n = len(c.config.stages)
        extra = (
            f"canary={placed['arm']}; stage={placed['stage'] + 1}/{n}; "
            f"percent={placed['percent']:g}; status={placed['status']}"
        )
        route = headers.get("x-turnout-route")
        headers["x-turnout-route"] = f"{route}; {extra}" if route else extra

    def status(self) -> dict[str, dict[str, Any]]:
        return {name: c.status_dict() for name, c in self._canaries.items()}
