"""Replay recorded requests against the old model (again) and the candidate, within a budget.

Each recorded request is sent twice: to the old model, to measure how much it varies from run to
run, and to the candidate. The recorded message list goes out as it was, tool results included,
so a conversation continues where it did; the models' tool calls are compared, never executed.
Both arms of a request are scheduled together, so they see the same load, and a request is only
started if both still fit the budget: every replayed request yields a complete pair.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from turnout.backends.base import Backend, Operation, UpstreamError, UpstreamRequest
from turnout.config import Price
from turnout.migrate.records import Answer, Recorded

Progress = Callable[[int, int, float], None]  # (requests done, planned, USD spent)
_DROP = ("stream", "stream_options", "model", "user")
DEFAULT_MAX_TOKENS = 512  # assumed for the budget when a request sets none


@dataclass(frozen=True, slots=True)
class Overrides:
    """Changes applied to the candidate's requests only: a new system prompt, sampling."""

    system: str | None = None
    params: tuple[tuple[str, Any], ...] = ()

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        out = {**body, **dict(self.params)}
        if self.system is not None and isinstance(out.get("messages"), list):
            rest = [
                m
                for m in out["messages"]
                if not (isinstance(m, dict) and m.get("role") == "system")
            ]
            out["messages"] = [{"role": "system", "content": self.system}, *rest]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"system": self.system, "params": dict(self.params)}


@dataclass(slots=True)
class Pair:
    """One replayed request: what was recorded, the old model again, the candidate."""

    id: str
    route: str
    deployment: str
    category: str
    operation: str
    request: dict[str, Any]
    recorded: Answer
    old: Answer
    candidate: Answer

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "route": self.route,
            "deployment": self.deployment,
            "category": self.category,
            "operation": self.operation,
            "request": self.request,
            "recorded": self.recorded.as_dict(),
            "old": self.old.as_dict(),
            "candidate": self.candidate.as_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pair:
        return cls(
            data["id"], data["route"], data["deployment"], data["category"], data["operation"],
            data["request"], Answer.from_dict(data["recorded"]), Answer.from_dict(data["old"]),
            Answer.from_dict(data["candidate"]),
        )  # fmt: skip


@dataclass(slots=True)
class Replay:
    """A replay's pairs and how they were made; stored as JSONL (a header line, then pairs)."""

    old: str
    candidate: str
    started: float
    ended: float = 0.0
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    cost_usd: float = 0.0
    note: str = ""
    pairs: list[Pair] = field(default_factory=list)
    sequential: dict[str, Any] | None = None  # the looks of a --sequential replay

    def header(self) -> dict[str, Any]:
        return {
            "turnout_migrate_replay": 1,
            "old": self.old,
            "candidate": self.candidate,
            "started": self.started,
            "ended": self.ended,
            "overrides": self.overrides,
            "seed": self.seed,
            "cost_usd": self.cost_usd,
            "note": self.note,
            "pairs": len(self.pairs),
            "sequential": self.sequential,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [orjson.dumps(self.header())] + [orjson.dumps(p.as_dict()) for p in self.pairs]
        path.write_bytes(b"\n".join(lines) + b"\n")

    @classmethod
    def read(cls, path: Path) -> Replay:
        try:
            lines = [line for line in path.read_bytes().splitlines() if line.strip()]
            head = orjson.loads(lines[0]) if lines else {}
            if head.get("turnout_migrate_replay") != 1:
                raise ValueError("the first line is not a replay header")
            pairs = [Pair.from_dict(orjson.loads(line)) for line in lines[1:]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a turnout replay file ({exc})") from None
        fields = {k: head[k] for k in ("old", "candidate", "started", "ended", "overrides")}
        return cls(**fields, seed=head.get("seed"), cost_usd=head.get("cost_usd", 0.0),
                   note=head.get("note", ""), pairs=pairs,
                   sequential=head.get("sequential"))  # fmt: skip


def request_seed(seed: int, request_id: str) -> int:
    digest = hashlib.sha256(f"{seed}:{request_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def replay_body(record: Recorded, seed: int | None) -> dict[str, Any]:
    """The recorded body as the old model gets it again: unstreamed, the model name left to the
    backend, the output budget of the attempt that was recorded, a per-request seed when asked
    for and the client set none."""
    body = {k: v for k, v in record.body.items() if k not in _DROP}
    if record.final_max_tokens is not None:
        key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        body[key] = record.final_max_tokens
    if seed is not None and "seed" not in body:
        body["seed"] = request_seed(seed, record.id)
    return body


def _prompt_chars(body: dict[str, Any]) -> int:
    if isinstance(body.get("prompt"), str):
        return len(body["prompt"])
    return len(orjson.dumps(body.get("messages") or [])) + len(
        orjson.dumps(body.get("tools") or [])
    )


def worst_cost(body: dict[str, Any], price: Price) -> float:
    """An upper bound: ~3 characters a token for the prompt, every allowed output token."""
    limit = body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
    return price.cost(math.ceil(_prompt_chars(body) / 3) + 8, int(limit))


@dataclass(slots=True)
class Arm:
    name: str
    backend: Backend
    price: Price = field(default_factory=Price)
    overrides: Overrides = field(default_factory=Overrides)


class Replayer:
    def __init__(
        self,
        old: Arm,
        candidate: Arm,
        *,
        budget_usd: float | None = None,
        concurrency: int = 2,
        seed: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.old = old
        self.candidate = candidate
        self.budget_usd = budget_usd
        self.concurrency = max(1, concurrency)
        self.seed = seed
        self.progress = progress
        self._spent = 0.0
        self._reserved = 0.0
        self._rng = random.Random(seed)

    async def run(self, records: list[Recorded]) -> Replay:
        replay = Replay(
            self.old.name,
            self.candidate.name,
            time.time(),
            overrides=self.candidate.overrides.as_dict(),
            seed=self.seed,
        )
        queue = iter(records)
        done: dict[str, Pair] = {}

        async def worker() -> None:
            for record in queue:
                base = replay_body(record, self.seed)
                bodies = (base, self.candidate.overrides.apply(base))
                worst = worst_cost(bodies[0], self.old.price) + worst_cost(
                    bodies[1], self.candidate.price
                )
                if self.budget_usd is not None:
                    if self._spent + self._reserved + worst > self.budget_usd:
                        replay.note = f"cost budget ${self.budget_usd:g} reached"
                        return
                    self._reserved += worst
                op = Operation.CHAT if record.operation == "chat" else Operation.COMPLETION
                sends = [
                    self._send(self.old, op, bodies[0], record.id + "-old"),
                    self._send(self.candidate, op, bodies[1], record.id + "-new"),
                ]
                # Which arm goes first is a coin toss: on a shared, queueing backend the first
                # would otherwise always wait less.
                flip = self._rng.random() < 0.5
                results = await asyncio.gather(*(sends[::-1] if flip else sends))
                old, new = results[::-1] if flip else results
                self._reserved -= worst if self.budget_usd is not None else 0.0
                self._spent += old.cost_usd + new.cost_usd
                done[record.id] = Pair(
                    record.id, record.model, record.deployment, record.category,
                    record.operation, base, record.answer, old, new,
                )  # fmt: skip
                if self.progress is not None:
                    self.progress(len(done), len(records), self._spent)

        workers = max(1, min(len(records), math.ceil(self.concurrency / 2)))
        await asyncio.gather(*(worker() for _ in range(workers)))
        replay.pairs = [done[r.id] for r in records if r.id in done]
        replay.cost_usd = self._spent
        replay.ended = time.time()
        return replay

    async def _send(self, arm: Arm, op: Operation, body: dict[str, Any], rid: str) -> Answer:
        started = time.perf_counter()
        try:
            result = await arm.backend.complete(UpstreamRequest(op, body, rid))
        except UpstreamError as exc:
            return Answer(error=f"{exc.failure.value}: {exc.message}")
        answer = Answer.from_body(result.body)
        answer.latency_s = time.perf_counter() - started
        answer.prompt_tokens = result.usage.prompt_tokens
        answer.completion_tokens = result.usage.completion_tokens
        answer.cost_usd = arm.price.cost(answer.prompt_tokens, answer.completion_tokens)
        return answer
