"""Capabilities wrap the engine as layers: each sees requests on the way in, observes every
finished run, and starts and closes with the gateway, in order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway_harness import start_gateway
from upstream import ScriptedUpstream

from turnout.config import ModelConfig, parse_config
from turnout.gateway import Gateway
from turnout.intent.layer import IntentLayer
from turnout.layers import Handler, Layer
from turnout.lifecycle.engine import Reply, StreamHead
from turnout.lifecycle.request import Request
from turnout.lifecycle.run import Run
from turnout.migrate.traffic import MigrationLayer


class Tagging(Layer):
    """Adds its name to `x-layers` and writes down everything that happens to it."""

    def __init__(self, inner: Handler, name: str, log: list[str]) -> None:
        super().__init__(inner)
        self.name = name
        self.log = log
        self.observed: list[tuple[str, str]] = []

    async def start(self) -> None:
        self.log.append(f"start {self.name}")

    async def close(self) -> None:
        self.log.append(f"close {self.name}")

    def observe(self, run: Run) -> None:
        self.observed.append((run.id, run.state.value))

    async def complete(
        self,
        run: Run,
        model: ModelConfig,
        request: Request,
    ) -> Reply:
        reply = await self.inner.complete(run, model, request)
        reply.headers["x-layers"] = f"{self.name},{reply.headers.get('x-layers', '')}".strip(",")
        return reply

    async def stream(
        self,
        run: Run,
        model: ModelConfig,
        request: Request,
    ) -> AsyncIterator[Reply | StreamHead | bytes]:
        async for item in self.inner.stream(run, model, request):
            if isinstance(item, StreamHead):
                item.headers["x-layers"] = self.name
            yield item


def tagging(name: str, log: list[str]) -> Any:
    return lambda inner, gateway: Tagging(inner, name, log)


def config(upstream: ScriptedUpstream, extra: str = "") -> str:
    return f"""
deployments:
  up: {{kind: openai, base_url: "{upstream.base_url}", model: m, rtt_probe_s: 0}}
  cand: {{kind: openai, base_url: "{upstream.base_url}", model: m, rtt_probe_s: 0}}
models:
  assistant: {{deployments: [up]{extra}}}
"""


def test_layers_wrap_in_order_observe_every_run_and_close_in_reverse(tmp_path: Path) -> None:
    log: list[str] = []
    with ScriptedUpstream() as upstream:
        gw = start_gateway(
            config(upstream),
            tmp_path / "turnout.db",
            layers=[tagging("inner", log), tagging("outer", log)],
        )
        try:
            intent, inner, outer = gw.gateway.layers  # intent detection is on by default
            assert isinstance(intent, IntentLayer) and inner.inner is intent
            assert gw.gateway.engine is outer and outer.inner is inner
            ok = gw.chat(model="assistant")
            streamed = gw.chat(model="assistant", stream=True)
            bad = gw.post("/v1/chat/completions", {"model": "assistant", "messages": "hi"})
            assert ok.status_code == 200 and ok.headers["x-layers"] == "outer,inner"
            assert streamed.status_code == 200 and streamed.headers["x-layers"] == "outer"
            assert bad.status_code == 400  # refused before the engine ran: observed all the same
            ids = [r.headers["x-turnout-request-id"] for r in (ok, streamed, bad)]
            expected = list(zip(ids, ["completed", "completed", "rejected"], strict=True))
            assert isinstance(inner, Tagging) and isinstance(outer, Tagging)
            assert inner.observed == expected and outer.observed == expected
        finally:
            gw.stop()
    assert log == ["start inner", "start outer", "close outer", "close inner"]


def test_no_layer_is_built_for_a_capability_that_is_not_configured() -> None:
    off = ", intent: {detect: false}"
    text = config(ScriptedUpstream(), off).replace('""', '"http://127.0.0.1:9/v1"')
    assert Gateway(parse_config(text, "test")).layers == []


def test_the_canary_sees_every_run_under_another_layer(tmp_path: Path) -> None:
    canary = ", canary: {deployment: cand, stages: [50, 100], min_stage_s: 0}"
    with ScriptedUpstream() as upstream:
        gw = start_gateway(
            config(upstream, canary), tmp_path / "turnout.db", layers=[tagging("outer", [])]
        )
        try:
            migration, intent, outer = gw.gateway.layers
            assert isinstance(migration, MigrationLayer) and intent.inner is migration
            assert isinstance(intent, IntentLayer) and outer.inner is intent
            for _ in range(6):
                r = gw.chat(model="assistant")
                assert r.status_code == 200 and r.headers["x-layers"] == "outer"
                assert "canary=" in r.headers["x-turnout-route"]
            metrics = gw.http.get("/metrics").text
        finally:
            gw.stop()
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("turnout_canary_requests_total{")
    ]
    assert sum(counted) == 6
