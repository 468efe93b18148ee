"""The gateway's side of `routing: balanced`: one `LoadTracker` and one length predictor for
every balanced model, the scrapes of the servers' own metrics, and (with Redis) other replicas'
in-flight work folded in.

The journey calls it where a request's life touches an instance: `ask` and `rank` when it is
routed, `start` when an attempt is sent, `tokens` as the stream relays, `finish` when the attempt
ends; the gateway calls `observe` when the run is finished.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from turnout.config import DeploymentConfig
from turnout.routing.balance import Ask, Ranking, completion_s
from turnout.routing.length import FamilyQuantiles, LengthFeatures, features_from_body
from turnout.routing.signals import Signal, llamacpp_signal, vllm_signal
from turnout.routing.tracker import LoadTracker

if TYPE_CHECKING:
    from turnout.routing.shared import SharedState

log = logging.getLogger("turnout.balance")

# A report older than this many scrape intervals (and at least a second) is ignored: a stalled
# server or a broken scrape must not steer. Other replicas' reports age the same way.
STALE_SCRAPES = 3


def parse_metrics(text: str, at: float, model: str | None) -> Signal:
    """vLLM's or llama.cpp's `/metrics`, told apart by their metric prefixes."""
    if "llamacpp:" in text:
        return llamacpp_signal(text, at)
    return vllm_signal(text, at, model)


class Balancer:
    def __init__(
        self,
        deployments: Mapping[str, DeploymentConfig],
        names: Iterable[str],
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_prediction: Callable[[str, float, int], None] | None = None,
        on_scrape_error: Callable[[str], None] | None = None,
    ) -> None:
        self.deployments = deployments
        self.names = tuple(names)
        every = [deployments[n].scrape_s for n in self.names if deployments[n].scrape_url]
        self.stale_after_s = max(1.0, STALE_SCRAPES * max(every, default=1.0))
        self.tracker = LoadTracker(
            self.names, rng=rng or random.Random(), stale_after_s=self.stale_after_s, clock=clock
        )
        self.predictor = FamilyQuantiles()
        self.on_prediction = on_prediction  # (route, predicted mean, actual): the error metric
        self.on_scrape_error = on_scrape_error
        self.shared: SharedState | None = None  # set when replicas share state

    # -- a request's life ---------------------------------------------------------------------

    def ask(self, route: str, body: Mapping[str, Any], prompt_tokens: int) -> Ask:
        features = features_from_body(route, body)
        return Ask.of(
            prompt_tokens,
            self.predictor.predict(features),
            prefix_key=features.system_hash,
            prefix_tokens=0,
        )

    def rank(self, ask: Ask, names: Iterable[str], strategy: str) -> Ranking:
        return self.tracker.rank(ask, names=names, strategy=strategy)

    def completion_s(self, name: str, ask: Ask) -> float | None:
        """Predicted seconds until `ask` would finish on `name`, its queue and batch counted."""
        inst = self.tracker.instances.get(name)
        if inst is None:
            return None
        return completion_s(inst, ask, self.tracker.clock(), self.tracker.stale_after_s)

    def start(self, name: str, key: Hashable, ask: Ask, *, streamed: bool) -> None:
        self.tracker.start(name, key, ask, streamed=streamed)

    def tokens(self, key: Hashable, n: int = 1) -> None:
        self.tracker.tokens(key, n)

    def finish(self, key: Hashable, *, output_tokens: int | None, ok: bool) -> None:
        self.tracker.finish(key, output_tokens=output_tokens, ok=ok)

    def observe(self, route: str, body: Mapping[str, Any], output_tokens: int) -> None:
        """A finished answer's true length: teaches the predictor, scores its forecast."""
        features: LengthFeatures = features_from_body(route, body)
        predicted = self.predictor.predict(features).mean
        self.predictor.observe(features, output_tokens)
        if self.shared is not None:
            self.shared.answered(features, output_tokens)
        if self.on_prediction is not None:
            self.on_prediction(route, predicted, output_tokens)

    # -- live signals ---------------------------------------------------------------------------

    def scrape_targets(self) -> dict[str, str]:
        return {n: url for n in self.names if (url := self.deployments[n].scrape_url) is not None}

    async def scrape_forever(self, name: str, url: str, every_s: float) -> None:
        """Poll one server's `/metrics`. A failed scrape leaves the last signal to go stale."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=max(0.2, min(every_s, 2.0)))
        model = self.deployments[name].model
        failing = False
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                try:
                    async with http.get(url) as r:
                        if r.status != 200:
                            raise RuntimeError(f"HTTP {r.status}")
                        text = await r.text()
                    self.tracker.apply(name, parse_metrics(text, self.tracker.clock(), model))
                    if failing:
                        log.info("metrics of %s at %s are back", name, url)
                    failing = False
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any failure means: no fresh signal
                    if self.on_scrape_error is not None:
                        self.on_scrape_error(name)
                    if not failing:
                        log.warning("cannot scrape %s at %s: %s", name, url, exc)
                    failing = True
                # Backs off while it fails, so a server without /metrics costs little.
                await asyncio.sleep(every_s if not failing else min(30.0, every_s * 10))


def log_ratio(predicted: float, actual: int) -> float:
    """|ln(predicted / actual)|: how many e-folds a length forecast was off."""
    return abs(math.log(max(predicted, 1.0) / max(actual, 1)))
