"""The watch inside a real gateway: scheduled checks, the alarm after two rejections in a row, and
the deployment out of rotation until a check passes; passive monitoring over the record."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from turnout.backends.base import Backend, Operation
from turnout.backends.embedded import EmbeddedBackend
from turnout.config import parse_config
from turnout.fingerprint import FingerprintStore, ProbeRunner, TamperedBackend
from turnout.fingerprint.passive import PassiveMonitor
from turnout.fingerprint.settings import PassiveSettings
from turnout.fingerprint.suite import builtin_suite, load_suite
from turnout.fingerprint.watch import Watcher
from turnout.gateway import Gateway
from turnout.lifecycle.request import Request

WATCH_PROBES = ("ru-city", "ja-city", "zh-city", "choice-c")  # where the two models differ most


def suite_yaml() -> str:
    """A user suite in YAML: four built-in probes, short completions."""
    import yaml

    probes = [
        {"id": p.id, "prompt": p.prompt} for p in builtin_suite().probes if p.id in WATCH_PROBES
    ]
    suite = {"name": "watch-test", "samples_per_probe": 6, "logprobs": 0}
    suite |= {"sampling": {"temperature": 1.0, "max_tokens": 12}, "probes": probes}
    return str(yaml.safe_dump(suite, allow_unicode=True))


def gateway_config(tmp_path: Path, watch: str = "") -> str:
    return f"""
deployments:
  edge: {{kind: embedded, model: smollm2-135m, max_concurrency: 2}}
models:
  local: {{deployments: [edge], lifecycle: {{on_truncation: accept}}}}
store: {{url: "sqlite:///{tmp_path / "turnout.db"}", flush_interval_s: 0.05}}
{watch}"""


@pytest.fixture
def watch_file(tmp_path: Path) -> Path:
    """The suite the watch probes with; the config's `fingerprint:` section names it."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(suite_yaml())
    return suite


def watch_section(suite: Path) -> str:
    return (
        "fingerprint:\n"
        "  deployments:\n"
        f"    edge: {{suite: {suite}, samples: 16, every_s: 3600, take_out: true}}\n"
    )


def drilled_gateway(
    tmp_path: Path, gemma: EmbeddedBackend, suite: Path
) -> tuple[Gateway, TamperedBackend]:
    drills: dict[str, TamperedBackend] = {}

    def wrap(name: str, backend: Backend) -> Backend:
        drills[name] = TamperedBackend(backend, other=gemma)
        return drills[name]

    config = parse_config(gateway_config(tmp_path, watch_section(suite)), "test")
    gateway = Gateway(config, wrap_backend=wrap)
    return gateway, drills["edge"]


def test_the_watch_starts_with_the_gateway_when_configured_and_stops_with_it(
    tmp_path: Path, watch_file: Path, gemma: EmbeddedBackend
) -> None:
    gateway, _ = drilled_gateway(tmp_path, gemma, watch_file)

    async def scenario() -> None:
        await gateway.start()
        try:
            watcher = gateway.fingerprint_watch
            assert isinstance(watcher, Watcher)
            assert watcher.backends is gateway.backends
            assert watcher._tasks and all(not t.done() for t in watcher._tasks)
        finally:
            await gateway.close()
        assert not watcher._tasks  # closing the gateway stopped its watch

    asyncio.run(scenario())


def test_no_watch_without_settings(tmp_path: Path) -> None:
    gateway = Gateway(parse_config(gateway_config(tmp_path), "test"))
    assert Watcher.for_gateway(gateway) is None


def test_two_rejections_in_a_row_raise_the_alarm_and_take_the_deployment_out(
    tmp_path: Path,
    watch_file: Path,
    gemma: EmbeddedBackend,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The scheduled first check (10 s after start) must not interleave with the checks this
    # test makes itself: on a busy machine the baseline alone can take longer than that.
    monkeypatch.setattr("turnout.fingerprint.watch.FIRST_CHECK_S", 3600.0)
    gateway, drill = drilled_gateway(tmp_path, gemma, watch_file)
    store_url = gateway.config.store.url

    async def scenario() -> list[bool | None]:
        await gateway.start()
        try:
            baseline = await ProbeRunner(
                gateway.backends["edge"], load_suite(watch_file), seed=1
            ).run()
            with FingerprintStore(store_url) as store:
                store.save_run(baseline)
                store.set_baseline("edge", baseline.id, "edge")
            watcher = gateway.fingerprint_watch  # started with the gateway
            assert isinstance(watcher, Watcher)
            watcher.seed = 100
            seen: list[bool | None] = []
            check = await watcher.check("edge")  # the same model: passes
            seen.append(None if check is None else check.changed)
            drill.share = 1.0  # the provider swaps the model behind the name
            check = await watcher.check("edge")
            seen.append(None if check is None else check.changed)
            seen.append(gateway.breakers["edge"].available())  # one rejection: no alarm yet
            check = await watcher.check("edge")
            seen.append(None if check is None else check.changed)
            seen.append(gateway.breakers["edge"].available())  # alarm: out of rotation
            metrics = gateway.metrics.render().decode()
            assert 'turnout_fingerprint_alarm{deployment="edge"} 1.0' in metrics
            drill.share = 0.0  # and back
            check = await watcher.check("edge")
            seen.append(None if check is None else check.changed)
            seen.append(gateway.breakers["edge"].available())
            await watcher.stop()
            return seen
        finally:
            await gateway.close()

    with caplog.at_level(logging.INFO, logger="turnout.fingerprint"):
        seen = asyncio.run(scenario())
    assert seen == [False, True, True, True, False, False, True]
    with FingerprintStore(store_url) as store:
        alarms = store.alarms("edge")
        checks = store.checks("edge")
    assert [a.kind for a in alarms] == ["raised", "cleared"]
    assert "taken out of rotation" in alarms[0].message
    assert alarms[0].detail["since"] == checks[1].at  # since the first rejection of the streak
    assert any("fingerprint ALARM: edge" in r.message for r in caplog.records)


def test_passive_monitoring_sees_output_length_shift_in_the_record(tmp_path: Path) -> None:
    gateway, drill = drilled_gateway_plain(tmp_path)
    prompts = ["Once upon a time,", "The weather today is", "My favourite food is", "In 1990,"]

    async def send(n: int) -> None:
        for i in range(n):
            body = {"model": "local", "prompt": prompts[i % len(prompts)], "max_tokens": 8}
            run = gateway.new_run("local", Operation.COMPLETION, False, body)
            request = Request.from_openai(body, Operation.COMPLETION)
            await gateway.engine.complete(run, gateway.models["local"], request)

    async def scenario() -> None:
        await gateway.start()
        try:
            await send(60)
            drill.max_tokens = 3  # a server configuration with a smaller output limit
            await send(30)
        finally:
            await gateway.close()

    asyncio.run(scenario())
    settings = PassiveSettings(warmup=40, batch=5, threshold=8.0)
    shifts = PassiveMonitor(gateway.config.store.url, settings).scan()
    assert [(s.model, s.deployment, s.signal, s.shift.direction) for s in shifts][:1] == [
        ("local", "edge", "output_length", -1)
    ]
    assert shifts[0].shift.observations > 60  # after the change, not before


def drilled_gateway_plain(tmp_path: Path) -> tuple[Gateway, TamperedBackend]:
    drills: dict[str, TamperedBackend] = {}

    def wrap(name: str, backend: Backend) -> Backend:
        drills[name] = TamperedBackend(backend)
        return drills[name]

    gateway = Gateway(parse_config(gateway_config(tmp_path), "test"), wrap_backend=wrap)
    return gateway, drills["edge"]
