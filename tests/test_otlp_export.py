"""turnout's OTLP span export. The encoding against the OpenTelemetry SDK's own: real SDK spans
(every kind of attribute value, events, links, statuses, a remote parent, two scopes, two
resources) encoded both ways parse to the same `ExportTraceServiceRequest`. The exporter against
a real OTLP/HTTP receiver on loopback that refuses on cue."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState
from otlp_receiver import OTLPReceiver

from turnout.telemetry.otlp import OTLPExporter
from turnout.telemetry.otlp_encoding import encode_spans

VALUES = {
    "s": "héllo", "empty": "", "t": True, "f": False, "zero": 0, "i": 42, "neg": -7,
    "big": 2**62, "x": 1.5, "nan_free": -0.0, "strs": ("a", "b"), "ints": (1, 2, 3),
    "floats": (0.5,), "bools": (True, False), "none_in": ("a", None),
}  # fmt: skip


def spans() -> list[ReadableSpan]:
    out: list[ReadableSpan] = []
    for service in ("turnout", "other"):
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": service, "n": 3}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        for scope, version, url in (("turnout", "0.1", "https://x/1"), ("gen", None, None)):
            tracer = provider.get_tracer(scope, version, schema_url=url)
            remote = SpanContext(
                0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1),
                trace_state=TraceState([("vendor", "v1"), ("k", "2")]),
            )  # fmt: skip
            parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
            with tracer.start_as_current_span(
                "root", context=parent, kind=SpanKind.SERVER, attributes=VALUES,
                links=[Link(remote, {"why": "retry"})],
            ) as root:  # fmt: skip
                root.add_event("turnout.routing", {"turnout.to": "a", "n": 2})
                root.add_event("bare")
                root.set_status(Status(StatusCode.ERROR, "upstream 503"))
                with tracer.start_as_current_span("chat m", kind=SpanKind.CLIENT) as child:
                    child.set_attribute("gen_ai.usage.input_tokens", 12)
                    child.set_status(Status(StatusCode.OK))
            with tracer.start_as_current_span("internal"):
                pass
        out.extend(memory.get_finished_spans())
    return out


def test_the_bytes_parse_to_the_message_the_sdk_builds() -> None:
    batch = spans()
    assert len(batch) == 12
    ours = ExportTraceServiceRequest.FromString(encode_spans(batch))
    theirs = ExportTraceServiceRequest.FromString(sdk_encode(batch).SerializeToString())
    assert ours == theirs
    # and it is not vacuous: two resources, two scopes each, every value as sent
    assert [len(r.scope_spans) for r in ours.resource_spans] == [2, 2]
    root = ours.resource_spans[0].scope_spans[0].spans[1]
    assert root.name == "root" and root.trace_state == "vendor=v1,k=2"
    values = {kv.key: kv.value for kv in root.attributes}
    assert values["neg"].int_value == -7 and values["empty"].HasField("string_value")
    assert [v.string_value for v in values["strs"].array_value.values] == ["a", "b"]


def test_an_attribute_that_cannot_be_encoded_is_left_out_alone() -> None:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("s") as span:
        span.set_attribute("ok", "yes")
        span._attributes["huge"] = 2**70  # type: ignore[attr-defined]  # past int64
    (done,) = memory.get_finished_spans()
    (resource_spans,) = ExportTraceServiceRequest.FromString(encode_spans([done])).resource_spans
    (sent,) = resource_spans.scope_spans[0].spans
    assert [kv.key for kv in sent.attributes] == ["ok"]


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    r = OTLPReceiver().start()
    try:
        yield r
    finally:
        r.stop()


def test_passing_refusals_are_retried_and_the_batch_arrives_once(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=blue%20green,authorization=Bearer%20k")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    exporter = OTLPExporter(receiver.endpoint + "/v1/traces", backoff_s=(0.01, 0.01, 0.01))
    receiver.refuse = [503, 429]
    batch = spans()
    assert exporter.export(batch) is SpanExportResult.SUCCESS
    assert len(receiver.spans) == len(batch)  # once, though sent three times
    assert len(receiver.headers) == 3
    sent = receiver.headers[-1]
    assert sent["x-team"] == "blue green" and sent["authorization"] == "Bearer k"
    assert sent["content-encoding"] == "gzip"
    exporter.shutdown()


def test_a_refused_batch_is_dropped_with_one_warning_and_the_next_goes_through(
    receiver: OTLPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    secret_url = receiver.endpoint.replace("://", "://user:hunter2@") + "/v1/traces?token=t0p"
    exporter = OTLPExporter(secret_url, backoff_s=(0.01,))
    receiver.refuse = [400, 503, 503, 503, 503]
    batch = spans()
    with caplog.at_level(logging.WARNING, logger="turnout.telemetry"):
        assert exporter.export(batch) is SpanExportResult.FAILURE  # 400: not retried
        assert exporter.export(batch) is SpanExportResult.FAILURE  # 503 past its retries
    assert len(receiver.headers) == 1 + 2
    (warning,) = caplog.records  # one outage, one line
    assert "HTTP 400" in warning.getMessage()
    assert "hunter2" not in warning.getMessage() and "t0p" not in warning.getMessage()
    receiver.refuse = [503]
    assert exporter.export(batch) is SpanExportResult.SUCCESS
    assert len(receiver.spans) == len(batch)
    exporter.shutdown()
    assert exporter.export(batch) is SpanExportResult.FAILURE  # after shutdown: nothing sent
    assert len(receiver.headers) == 1 + 2 + 2


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key: (certificate, key) as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "otlp-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_a_tls_collector_is_trusted_through_the_certificate_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    receiver = OTLPReceiver(context).start()
    try:
        url = receiver.endpoint + "/v1/traces"
        assert url.startswith("https://")
        batch = spans()
        untrusting = OTLPExporter(url, backoff_s=())
        assert untrusting.export(batch) is SpanExportResult.FAILURE  # not a CA it knows
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", str(cert))
        trusting = OTLPExporter(url, backoff_s=())
        assert trusting.export(batch) is SpanExportResult.SUCCESS
        assert len(receiver.spans) == len(batch)
    finally:
        receiver.stop()


def test_a_collector_that_never_answers_costs_one_timeout_not_one_per_retry() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:  # takes connections, reads nothing, answers nothing
        with contextlib.suppress(OSError):
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1/traces"
    exporter = OTLPExporter(url, timeout_s=0.5, backoff_s=(0.01, 0.01, 0.01))
    try:
        assert exporter.export(spans()) is SpanExportResult.FAILURE
        # the one post used the whole timeout: no retry was started past it
        assert len(accepted) == 1
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
