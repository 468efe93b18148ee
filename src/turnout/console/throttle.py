"""Wrong admin keys at `/ui/login`, counted per client address: after `FREE` in a row the
address waits, twice as long after each further failure, while every other address signs in
as before. Counts live in this process only and are forgotten after `FORGET_S` of quiet.

Behind a reverse proxy every browser shares the proxy's address: the lockout is then shared.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE = 5  # wrong keys in a row before the address waits
BASE_S = 30.0  # the first wait; each further failure doubles it
MAX_S = 900.0
FORGET_S = 3600.0  # failures this old are forgotten
CLIENTS = 10_000  # addresses remembered at once (the oldest are dropped)


@dataclass(slots=True)
class _Tally:
    failures: int
    last: float


class LoginThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._seen: OrderedDict[str, _Tally] = OrderedDict()

    def wait_s(self, client: str) -> float:
        """Seconds `client` must wait before its next try; 0 when it may try now."""
        t = self._seen.get(client)
        now = self.clock()
        if t is None or now - t.last >= FORGET_S:
            return 0.0
        if t.failures < FREE:
            return 0.0
        hold = min(MAX_S, BASE_S * 2 ** (t.failures - FREE))
        return max(0.0, t.last + hold - now)

    def failed(self, client: str) -> None:
        now = self.clock()
        t = self._seen.pop(client, None)
        if t is None or now - t.last >= FORGET_S:
            t = _Tally(0, now)
        t.failures += 1
        t.last = now
        self._seen[client] = t
        while len(self._seen) > CLIENTS:
            self._seen.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._seen.pop(client, None)
