"""One attempt's hold on a deployment: every tally of its load, taken and given back together.

A deployment's load is counted in several places — the route estimates' in-flight count, the
balancer's flight, the admission gate (and through it the shared lease in Redis), the breaker's
half-open probe. An attempt takes them all by entering its lease and gives them all back by
leaving it, on every exit path: an answer, a failure, a client that went away, a bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from turnout.routing.admission import Gate, Ticket

if TYPE_CHECKING:
    from turnout.lifecycle.fleet import Fleet
    from turnout.routing.balance import Ask


@dataclass(frozen=True, slots=True)
class Admission:
    """How the attempt waits at the deployment's gate."""

    ticket: Ticket
    tokens: float
    timeout_s: float | None
    queue_limit: bool


class Lease:
    __slots__ = ("_ask", "_fleet", "_gate", "_in_flight", "_key", "deployment", "ok",
                 "output_tokens", "probe", "verdict")  # fmt: skip

    def __init__(
        self, fleet: Fleet, deployment: str, key: tuple[str, int], ask: Ask | None
    ) -> None:
        self._fleet = fleet
        self.deployment = deployment
        self._key = key
        self._ask = ask
        self._gate: Gate | None = None
        self._in_flight = False
        self.probe = False  # this attempt is the breaker's half-open probe
        self.verdict = False  # the attempt said something about the deployment's health
        self.ok = False
        self.output_tokens: int | None = None

    async def admit(self, admission: Admission | None) -> None:
        """Wait at the deployment's gate; raises Shed when the request may not wait."""
        gate = self._fleet.gates.get(self.deployment)
        if gate is None or admission is None:
            return
        t = admission.ticket
        est = self._fleet.router.estimates[self.deployment]
        est.queued += 1  # routing decisions meanwhile must see the queue, not only the slots
        try:
            await gate.enter(
                t.priority, t.tenant, admission.tokens, t.weight, admission.timeout_s,
                queue_limit=admission.queue_limit,
            )  # fmt: skip
        finally:
            est.queued -= 1
        self._gate = gate

    def occupy(self, streamed: bool) -> bool:
        """The attempt starts: count it everywhere. True when it is the half-open probe."""
        self._fleet.router.estimates[self.deployment].in_flight += 1
        self._in_flight = True
        balancer = self._fleet.router.balancer
        if self._ask is not None and balancer is not None:
            balancer.start(self.deployment, self._key, self._ask, streamed=streamed)
        self.probe = self._fleet.breakers[self.deployment].attempt_started()
        return self.probe

    def tokens(self, n: int = 1) -> None:
        """Tokens relayed to the client: the balancer's view of how far the answer has got."""
        balancer = self._fleet.router.balancer
        if self._in_flight and self._ask is not None and balancer is not None:
            balancer.tokens(self._key, n)

    def release(self) -> None:
        """Give everything back; idempotent, so an early release and the exit agree."""
        if self._in_flight:
            self._in_flight = False
            self._fleet.router.estimates[self.deployment].in_flight -= 1
            balancer = self._fleet.router.balancer
            if self._ask is not None and balancer is not None:
                balancer.finish(self._key, output_tokens=self.output_tokens, ok=self.ok)
        if self._gate is not None:
            self._gate.leave()
            self._gate = None
        if self.probe and not self.verdict:  # ended without a verdict (the client left)
            self._fleet.breakers[self.deployment].probe_ended()
        self.probe = False

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
