"""`routing: balanced` end to end: the gateway in front of real `turnout emulate` processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from emulators import Emulator
from gateway_harness import RunningGateway, start_gateway

from turnout.config import ConfigError, parse_config

# A fast instance whose decode step grows with the batch: busy ones are measurably slower.
FAST = (
    "--step-base-ms", "2", "--step-per-seq-ms", "1", "--step-per-kv-us", "0",
    "--prefill-tps", "1000000", "--max-batch", "16", "--model", "emu",
)  # fmt: skip


@pytest.fixture(scope="module")
def fleet() -> Iterator[list[Emulator]]:
    emus = [Emulator(*FAST) for _ in range(3)]
    yield emus
    for e in emus:
        e.stop()


def config(emus: list[Emulator], balance: str, *, scrape_s: float = 0.1, extra: str = "") -> str:
    deps = "".join(
        f"  gpu-{k}: {{kind: openai, base_url: '{e.url}/v1', model: emu, "
        f"scrape_s: {scrape_s}, rtt_probe_s: 0, pass_fields: [emulate]{extra}}}\n"
        for k, e in enumerate(emus)
    )
    names = ", ".join(f"gpu-{k}" for k in range(len(emus)))
    return (
        f"deployments:\n{deps}models:\n  fleet:\n    deployments: [{names}]\n"
        f"    routing: balanced\n    balance: {balance}\n"
    )


def short(tokens: int = 8, **extra: object) -> dict[str, object]:
    return {
        "model": "fleet",
        "messages": [{"role": "user", "content": "classify this"}],
        "emulate": {"output_tokens": tokens},
        **extra,
    }


class LongStreams:
    """Long generations held open on one instance, sent straight to it (not via the gateway)."""

    def __init__(self, emu: Emulator, n: int, tokens: int = 100_000) -> None:
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(emu.url, tokens), daemon=True)
            for _ in range(n)
        ]
        for t in self.threads:
            t.start()
        deadline = time.monotonic() + 20
        while emu.running() < n:
            assert time.monotonic() < deadline, "the long generations did not start"
            time.sleep(0.02)

    def _run(self, url: str, tokens: int) -> None:
        body = {
            "model": "emu",
            "messages": [{"role": "user", "content": "write a novel"}],
            "stream": True,
            "emulate": {"output_tokens": tokens},
        }
        with (
            httpx.Client(base_url=url, timeout=60) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as r,
        ):
            for _ in r.iter_lines():
                if self.stop.is_set():
                    return

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)


def spread(gw: RunningGateway, emus: list[Emulator], n: int) -> list[int]:
    """Send `n` short requests one after another; how many each emulator served."""
    before = [e.served() for e in emus]
    for _ in range(n):
        r = gw.post("/v1/chat/completions", short())
        assert r.status_code == 200, r.text
    return [e.served() - b for e, b in zip(emus, before, strict=True)]


def test_least_work_steers_short_requests_away_from_an_instance_busy_with_long_ones(
    fleet: list[Emulator], tmp_path: Path
) -> None:
    busy = LongStreams(fleet[0], 6)  # traffic the gateway did not send: seen only by scraping
    try:
        rr = start_gateway(config(fleet, "round_robin"), tmp_path / "rr.db")
        try:
            by_turn = spread(rr, fleet, 30)
        finally:
            rr.stop()
        gw = start_gateway(config(fleet, "least_work"), tmp_path / "lw.db")
        try:
            time.sleep(0.5)  # a few scrapes
            by_work = spread(gw, fleet, 30)
            r = gw.post("/v1/chat/completions", short())
            route = r.headers["x-turnout-route"]
            rec = gw.record(r.headers["x-turnout-request-id"])
        finally:
            gw.stop()
    finally:
        busy.close()
    assert by_turn == [10, 10, 10]  # the emulators' own counts
    assert by_work[0] <= 2, by_work  # the busy one is left alone
    assert by_work[1] + by_work[2] >= 28
    assert route.startswith(("gpu-1; rule=least_work", "gpu-2; rule=least_work")), route
    routed = next(e for e in rec["events"] if e["state"] == "routed")["attrs"]
    assert routed["balance"] == "least_work"
    assert routed["order"][-1] == "gpu-0"  # the busy instance is the last fallback
    scores = {c["deployment"]: c["latency_ms"] for c in routed["candidates"]}
    assert scores["gpu-0"] > max(scores["gpu-1"], scores["gpu-2"])


def test_the_gateways_own_long_streams_count_without_any_scrape(
    fleet: list[Emulator], tmp_path: Path
) -> None:
    gw = start_gateway(config(fleet, "least_work", scrape_s=0), tmp_path / "own.db")
    body = {**short(100_000), "stream": True}
    try:
        with (
            httpx.Client(base_url=gw.url, timeout=60) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as long_one,
        ):
            lines = long_one.iter_lines()
            next(lines)  # it is decoding
            busy = int(long_one.headers["x-turnout-deployment"].removeprefix("gpu-"))
            counts = spread(gw, fleet, 20)
        assert counts[busy] == 0, counts
        assert sum(counts) == 20
    finally:
        gw.stop()


class ReportsOverload(BaseHTTPRequestHandler):
    """A `/metrics` that claims 50 requests running: what a scrape of a busy server says."""

    def do_GET(self) -> None:
        text = b'vllm:num_requests_running{model_name="emu"} 50\n'
        self.send_response(200)
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args: object) -> None:
        pass


def test_a_scrape_that_goes_stale_stops_steering(fleet: list[Emulator], tmp_path: Path) -> None:
    reporter = ThreadingHTTPServer(("127.0.0.1", 0), ReportsOverload)
    threading.Thread(target=reporter.serve_forever, daemon=True).start()
    port = reporter.server_address[1]
    text = config(fleet[:2], "least_work", scrape_s=0.2).replace(
        "scrape_s: 0.2", f"scrape_s: 0.2, metrics_url: 'http://127.0.0.1:{port}/metrics'", 1
    )
    gw = start_gateway(text, tmp_path / "stale.db")
    try:
        time.sleep(0.5)
        steered = spread(gw, fleet[:2], 10)
        reporter.shutdown()  # its last word was "50 running"; it says nothing more
        reporter.server_close()
        time.sleep(gw.gateway.balancer.stale_after_s + 0.3)  # type: ignore[union-attr]
        after = spread(gw, fleet[:2], 10)
    finally:
        gw.stop()
    assert steered == [0, 10]  # the report kept gpu-0 out while it was fresh
    assert after[0] >= 3, after  # stale, it no longer counts: both take traffic again


def test_a_failed_attempt_falls_back_to_the_next_in_the_ranking(
    fleet: list[Emulator], tmp_path: Path
) -> None:
    dead = Emulator(*FAST)
    dead.stop()  # its port is closed: connection refused
    gw = start_gateway(config([dead, *fleet[:1]], "round_robin"), tmp_path / "fb.db")
    try:
        outcomes = []
        for _ in range(2):  # round robin: one of the two starts on the dead instance
            r = gw.post("/v1/chat/completions", short())
            assert r.status_code == 200, r.text
            outcomes.append((r.headers["x-turnout-attempts"], r.headers["x-turnout-deployment"]))
        assert ("2", "gpu-1") in outcomes
        metrics = gw.http.get("/metrics").text
        assert 'turnout_backend_scrape_errors_total{deployment="gpu-0"}' in metrics
    finally:
        gw.stop()


def test_prediction_error_is_exported_and_shrinks_once_lengths_are_learned(
    fleet: list[Emulator], tmp_path: Path
) -> None:
    gw = start_gateway(config(fleet, "least_work"), tmp_path / "len.db")
    try:
        for _ in range(40):
            assert gw.post("/v1/chat/completions", short(8)).status_code == 200
        text = gw.http.get("/metrics").text
    finally:
        gw.stop()
    series = "turnout_output_length_prediction_log_error"
    count = float(
        next(
            x for x in text.splitlines() if x.startswith(f'{series}_count{{model="fleet"')
        ).split()[-1]
    )
    assert count == 40
    # The prior (256 tokens) is off by ~3.5 e-folds; once learned, 8-token answers are predicted.
    within = float(
        next(x for x in text.splitlines() if x.startswith(f'{series}_bucket{{le="0.35"')).split()[
            -1
        ]
    )
    assert within >= 15


def test_a_full_deployment_sheds_with_503_and_retry_after(tmp_path: Path) -> None:
    emus = [Emulator(*FAST) for _ in range(2)]
    extra = ", max_concurrency: 1, max_queue: 0"
    gw = start_gateway(config(emus, "least_work", extra=extra), tmp_path / "shed.db")
    body = {**short(100_000), "stream": True}
    try:
        with (
            httpx.Client(base_url=gw.url, timeout=60) as a,
            httpx.Client(base_url=gw.url, timeout=60) as b,
            a.stream("POST", "/v1/chat/completions", json=body) as first,
            b.stream("POST", "/v1/chat/completions", json=body) as second,
        ):
            first_lines, second_lines = first.iter_lines(), second.iter_lines()
            next(first_lines), next(second_lines)
            r = gw.post("/v1/chat/completions", short())
            assert r.status_code == 503
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["code"] == "shed"
            assert r.headers["x-turnout-outcome"] == "shed"
    finally:
        gw.stop()
        for e in emus:
            e.stop()


def test_a_request_predicted_to_miss_its_deadline_is_shed_early(
    fleet: list[Emulator], tmp_path: Path
) -> None:
    gw = start_gateway(config(fleet, "least_work"), tmp_path / "deadline.db")
    try:
        # Nothing learned yet: a typical answer (~256 tokens) cannot finish within 20 ms.
        r = gw.post("/v1/chat/completions", short(), headers={"x-turnout-deadline-ms": "20"})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "shed"
        assert int(r.headers["retry-after"]) >= 1
        rec = gw.record(r.headers["x-turnout-request-id"])
        assert rec["outcome"] == "shed"
        assert "deadline" in rec["events"][-1]["attrs"]["reason"]
        assert not rec["attempts"]  # shed before any instance saw it
        ok = gw.post("/v1/chat/completions", short(), headers={"x-turnout-deadline-ms": "60000"})
        assert ok.status_code == 200
    finally:
        gw.stop()


@pytest.mark.parametrize(
    ("model", "path", "words"),
    [
        ("routing: balanced\n    balance: fastest", "models.m.balance", "must be one of"),
        ("routing: ordered\n    balance: least_work", "models.m.balance", "only for routing"),
    ],
)
def test_bad_balance_values_name_the_key_path(model: str, path: str, words: str) -> None:
    text = (
        "deployments:\n  a: {kind: openai, base_url: 'http://127.0.0.1:1/v1', model: x}\n"
        f"models:\n  m:\n    deployments: [a]\n    {model}\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, "fleet.yaml")
    assert err.value.path == path
    assert words in err.value.message
    assert str(err.value).startswith(f"fleet.yaml: {path}: ")


def test_metrics_url_and_state_url_are_checked() -> None:
    base = "deployments:\n  a: {kind: openai, base_url: 'http://h:1/v1', model: x%s}\n%s"
    with pytest.raises(ConfigError) as err:
        parse_config(base % (", metrics_url: 'h:1/metrics'", ""))
    assert err.value.path == "deployments.a.metrics_url"
    with pytest.raises(ConfigError) as err:
        parse_config(base % ("", "state: {url: 'http://h:6379'}\n"))
    assert err.value.path == "state.url"
    cfg = parse_config(base % ("", "state: {url: 'redis://127.0.0.1:6379/0'}\n"))
    assert cfg.deployments["a"].scrape_url == "http://h:1/metrics"  # derived from base_url
    assert cfg.state.url == "redis://127.0.0.1:6379/0"
