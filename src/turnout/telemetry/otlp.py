"""Spans posted to an OTLP/HTTP collector by turnout's own exporter (the encoding is
`otlp_encoding`), configured as the OpenTelemetry exporters are, by OTEL_EXPORTER_OTLP_* variables.
"""

from __future__ import annotations

import gzip
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Sequence

import requests
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from turnout.telemetry.otlp_encoding import encode_spans

log = logging.getLogger("turnout.telemetry")

_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_BACKOFF_S = (0.5, 1.0, 2.0)  # then the batch is dropped: a collector away must not stall spans


def _env(name: str) -> str:
    """An OTLP exporter setting: the traces-specific variable, else the general one."""
    return os.environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or os.environ.get(
        f"OTEL_EXPORTER_OTLP_{name}", ""
    )


def _env_headers() -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_(TRACES_)HEADERS: `k=v,k2=v2`, values URL-encoded."""
    headers = {}
    for pair in _env("HEADERS").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            headers[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return headers


class OTLPExporter(SpanExporter):
    """POSTs each batch as protobuf; retries what a collector says is passing (429, 502–504,
    no connection) up to three times within the timeout, then drops the batch and says so once
    per outage."""

    def __init__(
        self,
        endpoint: str,
        timeout_s: float | None = None,
        backoff_s: Sequence[float] = _BACKOFF_S,
    ) -> None:
        self.endpoint = endpoint
        self.backoff_s = tuple(backoff_s)
        self.timeout_s = timeout_s if timeout_s is not None else _seconds(_env("TIMEOUT"))
        self.gzip = _env("COMPRESSION").strip().lower() == "gzip"
        self.headers = {
            **_env_headers(),
            "content-type": "application/x-protobuf",
            **({"content-encoding": "gzip"} if self.gzip else {}),
        }
        # Given with each post: a session's own would lose to REQUESTS_CA_BUNDLE in the environment.
        self._verify: str | bool = _env("CERTIFICATE") or True  # the collector's CA
        cert, key = _env("CLIENT_CERTIFICATE"), _env("CLIENT_KEY")  # mTLS
        self._cert: str | tuple[str, str] | None = ((cert, key) if key else cert) or None
        self._session = requests.Session()
        self._stop = threading.Event()
        self._failing = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._stop.is_set():
            return SpanExportResult.FAILURE
        body = encode_spans(spans)
        if self.gzip:
            body = gzip.compress(body, compresslevel=6)
        deadline = time.monotonic() + self.timeout_s  # retries included: a shutdown waits no longer
        why = ""
        for wait in (*self.backoff_s, None):
            try:
                resp = self._session.post(
                    self.endpoint,
                    data=body,
                    headers=self.headers,
                    timeout=max(0.001, deadline - time.monotonic()),
                    verify=self._verify,
                    cert=self._cert,
                )
            except requests.RequestException as exc:
                why = f"{type(exc).__name__}"
            else:
                if resp.ok:
                    self._failing = False
                    return SpanExportResult.SUCCESS
                why = f"HTTP {resp.status_code}"
                if resp.status_code not in _RETRY_STATUSES:
                    break
            if wait is None or time.monotonic() + wait >= deadline or self._stop.wait(wait):
                break
        if not self._failing:
            where = _where(self.endpoint)
            log.warning("telemetry: spans could not be exported to %s (%s)", where, why)
        self._failing = True
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self._stop.set()
        self._session.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # nothing is held here: the batch processor holds the spans


def _where(url: str) -> str:
    """The collector's address without credentials or query, for a log line."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _seconds(raw: str | None) -> float:
    """The OTEL_*_TIMEOUT variables are milliseconds; 10 s when unset or unreadable."""
    try:
        return max(0.001, float(raw) / 1000) if raw else 10.0
    except ValueError:
        return 10.0
