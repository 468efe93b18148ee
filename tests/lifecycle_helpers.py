"""Assertions shared by the lifecycle tests: one request seen from every side."""

from __future__ import annotations

from typing import Any

import httpx
from gateway_harness import RunningGateway, spans_of


def check_run(
    gw: RunningGateway,
    response: httpx.Response,
    *,
    outcome: str,
    path: list[str],
    attempts: list[tuple[str, str]],
    status: int = 200,
) -> dict[str, Any]:
    """The client's response, the record and the spans all tell the same story.

    `attempts` lists (deployment, result) per attempt, result being "ok" or the failure class.
    """
    assert response.status_code == status, response.text
    rid = response.headers["x-turnout-request-id"]
    if "text/event-stream" not in response.headers.get("content-type", ""):
        assert response.headers["x-turnout-outcome"] == outcome
    assert response.headers.get("x-turnout-attempts") == str(len(attempts))
    rec = gw.record(rid)
    assert rec["outcome"] == outcome
    assert [e["state"] for e in rec["events"]] == path
    assert [(a["deployment"], a.get("error") or "ok") for a in rec["attempt_log"]] == attempts
    assert rec["http_status"] == status
    spans = spans_of(rid)
    root, children = spans[0], spans[1:]
    assert [e.name for e in root.events] == [f"turnout.{s}" for s in path]
    assert (root.attributes or {})["turnout.outcome"] == outcome
    assert len(children) == len(attempts)
    # A call span's error is the call's own: an answer that came back and was then judged
    # (invalid output, escalated) was a call that succeeded.
    for child, a in zip(children, rec["attempt_log"], strict=True):
        attrs = child.attributes or {}
        assert attrs["turnout.deployment"] == a["deployment"]
        assert attrs.get("error.type", "ok") == ("ok" if a.get("ok") else a["error"])
    return rec


def sse_events(text: str) -> list[Any]:
    import json

    out: list[Any] = []
    for block in text.split("\n\n"):
        block = block.strip()
        if block.startswith("data: "):
            data = block[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out
