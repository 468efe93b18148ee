"""The recording proxy that servers without the Node hook reach through HTTP(S)_PROXY."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mcp_peers import (  # noqa: F401 (fixtures are found by name)
    EmailApi,
    email_api_fixture,
    npm_peers_fixture,
)

from turnout.mcp.egress.recorder import EgressRecorder, Verdict
from turnout.mcp.egress.shapes import shape_of

pytestmark = pytest.mark.anyio


async def test_a_plain_http_request_is_judged_by_its_shape_then_forwarded(
    email_api: EmailApi,
) -> None:
    seen: list[dict[str, Any]] = []

    def decide(shape: dict[str, Any]) -> Verdict:
        seen.append(shape)
        return Verdict("Bcc" not in (shape["keys"] or []), "no Bcc")

    recorder = EgressRecorder(decide)
    await recorder.start()
    try:
        proxy = recorder.env()["HTTP_PROXY"]
        async with httpx.AsyncClient(proxy=proxy) as http:
            ok = await http.post(f"{email_api.url}/email", json={"To": "a@x", "Subject": "s"})
            refused = await http.post(f"{email_api.url}/email", json={"To": "a@x", "Bcc": "b@y"})
    finally:
        await recorder.stop()
    assert ok.status_code == 200 and ok.json() == {"ErrorCode": 0, "Message": "OK"}
    assert refused.status_code == 403 and "no Bcc" in refused.text
    assert [r["body"] for r in email_api.received] == [{"To": "a@x", "Subject": "s"}]
    host = email_api.url.removeprefix("http://")
    assert seen[0] == {"host": host, "method": "POST", "path": "/email", "keys": ["Subject", "To"]}


def test_shapes_keep_keys_and_drop_values_and_ids() -> None:
    shape = shape_of(
        "post",
        "https://api.example.com/v1/users/12345/messages?token=abc&page=2",
        b'{"message": {"to": ["a"], "cc": []}, "attachments": [{"name": "x", "data": "..."}]}',
        "application/json",
    )
    assert shape == {
        "host": "api.example.com",
        "method": "POST",
        "path": "/v1/users/{id}/messages",
        "keys": [
            "attachments",
            "attachments[].data",
            "attachments[].name",
            "message",
            "message.cc",
            "message.to",
        ],
        "query": ["page", "token"],
    }


async def test_the_node_hook_gets_one_verdict_per_report_on_a_kept_alive_connection() -> None:
    seen: list[dict[str, Any]] = []

    def decide(shape: dict[str, Any]) -> Verdict:
        seen.append(shape)
        return Verdict(shape["path"] == "/ok", "only /ok")

    recorder = EgressRecorder(decide)
    await recorder.start()
    try:
        url = recorder.env()["TURNOUT_EGRESS_URL"]
        async with httpx.AsyncClient() as http:  # one pooled connection, reused
            verdicts = [
                (await http.post(url, json={"method": "GET", "url": f"https://api.example{p}"}))
                for p in ("/ok", "/other", "/ok")
            ]
    finally:
        await recorder.stop()
    assert [v.json()["allow"] for v in verdicts] == [True, False, True]
    assert all(v.headers["connection"] == "keep-alive" for v in verdicts)
    assert [s["path"] for s in seen] == ["/ok", "/other", "/ok"]
