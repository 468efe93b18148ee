"""A continuous-batching engine paced in real time by the simulator's timing model.

The same rules as `turnout.sim.fleet.SimInstance`, run step by step on the clock: requests
wait until a batch slot and KV room for their prompt are free; a prefill pass (one request at a
time, everyone else's decode waits) yields a request's first token; each decode step gives every
running request one token and lasts `profile.step_s(batch, kv)`; when the KV cache fills, the
newest request is preempted and later recomputed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field

from turnout.sim.timing import Profile

_BEHIND_S = 0.05  # further behind the clock than this, stop catching up (no token bursts)


@dataclass(eq=False, slots=True)
class Job:
    prompt_tokens: int
    output_tokens: int  # how many it will generate
    tokens: asyncio.Queue[int] = field(default_factory=asyncio.Queue)  # count so far, per token
    generated: int = 0
    resume: int = 0  # tokens generated before a preemption: recomputed in the next prefill
    admitted: int = 0
    done: bool = False

    @property
    def context(self) -> int:
        return self.prompt_tokens + self.generated


class BatchEngine:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.waiting: deque[Job] = deque()
        self.prefilling: deque[Job] = deque()
        self.running: list[Job] = []
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.preemptions_total = 0
        self.finished_total = 0
        self._admissions = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- what the metrics report ------------------------------------------------------------

    @property
    def num_running(self) -> int:
        return len(self.running) + len(self.prefilling)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    def kv_used(self) -> int:
        return sum(j.context for j in self.running) + sum(
            j.prompt_tokens + j.resume for j in self.prefilling
        )

    def kv_usage(self) -> float:
        return min(1.0, self.kv_used() / self.profile.kv_tokens)

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, job: Job) -> None:
        self.waiting.append(job)
        self._wake.set()

    def cancel(self, job: Job) -> None:
        """The client went away: the job gives its slot and KV back."""
        job.done = True
        for q in (self.waiting, self.prefilling):
            with contextlib.suppress(ValueError):
                q.remove(job)
        if job in self.running:
            self.running.remove(job)

    def _admit(self) -> None:
        cap = self.profile.kv_tokens
        while self.waiting and self.num_running < self.profile.max_batch:
            job = self.waiting[0]
            if self.num_running and self.kv_used() + job.prompt_tokens + job.resume > cap:
                return
            self.waiting.popleft()
            self.prefilling.append(job)

    def _emit(self, job: Job) -> None:
        job.generated += 1
        self.generation_tokens_total += 1
        job.tokens.put_nowait(job.generated)
        if job.generated >= job.output_tokens:
            job.done = True
            self.finished_total += 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        at = loop.time()
        while True:
            self._admit()
            if self.prefilling:
                job = self.prefilling.popleft()
                tokens = job.prompt_tokens + job.resume
                at = await _sleep_until(loop, at + self.profile.prefill_s(tokens))
                if job.done:  # cancelled while its prompt was processed
                    continue
                self.prompt_tokens_total += job.prompt_tokens if not job.resume else 0
                job.resume = 0
                self._emit(job)
                if job.done:
                    continue
                self._admissions += 1
                job.admitted = self._admissions
                self.running.append(job)
            elif self.running:
                batch = len(self.running)
                at = await _sleep_until(loop, at + self.profile.step_s(batch, self.kv_used()))
                for job in list(self.running):
                    if not job.done:
                        self._emit(job)
                self.running = [j for j in self.running if not j.done]
                if self.kv_used() >= self.profile.kv_tokens and len(self.running) > 1:
                    victim = max(self.running, key=lambda j: j.admitted)
                    self.running.remove(victim)
                    victim.resume = victim.generated
                    self.waiting.appendleft(victim)
                    self.preemptions_total += 1
            else:
                self._wake.clear()
                await self._wake.wait()
                at = loop.time()


async def _sleep_until(loop: asyncio.AbstractEventLoop, at: float) -> float:
    """Sleep to an absolute time; returns the time the next step is measured from."""
    delay = at - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
    now = loop.time()
    return at if now - at < _BEHIND_S else now
