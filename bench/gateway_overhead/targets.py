"""Each target is checked with one request per mode before it is timed, so a broken gateway
shows up as a failed probe instead of as a fast one."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from gateway_overhead.common import EXPECTED_CONTENT, MODES
from gateway_overhead.procs import Proc


@dataclass
class Target:
    name: str
    url: str  # chat completions URL
    model: str
    auth: str | None = None
    # sent with every request to this target only (Portkey's routing headers)
    headers: dict[str, str] = field(default_factory=dict)
    proc: Proc | None = None  # None for direct (the upstream is accounted separately)
    probe: dict[str, Any] = field(default_factory=dict)


def probe_target(t: Target) -> dict[str, Any]:
    """One non-streaming and one streaming request, checked for shape and content."""
    out: dict[str, Any] = {}
    headers = {"Content-Type": "application/json"}
    if t.auth:
        headers["Authorization"] = f"Bearer {t.auth}"
    headers.update(t.headers)
    for mode in MODES:
        body: dict[str, Any] = {
            "model": t.model,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 16,
        }
        if mode == "stream":
            body["stream"] = True
        req = urllib.request.Request(t.url, data=json.dumps(body).encode(), headers=headers)
        res: dict[str, Any] = {"ok": False}
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                res["status"] = resp.status
                res["content_type"] = resp.headers.get("content-type", "")
                raw = resp.read().decode()
            if mode == "nonstream":
                doc = json.loads(raw)
                content = doc["choices"][0]["message"]["content"]
                res["usage"] = doc.get("usage")
                res["ok"] = resp.status == 200 and content == EXPECTED_CONTENT
                res["content"] = content
            else:
                pieces: list[str] = []
                events, done, usage = 0, False, None
                for line in raw.splitlines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        continue
                    events += 1
                    chunk = json.loads(data)
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        pieces.append((choice.get("delta") or {}).get("content") or "")
                content = "".join(pieces)
                res.update(events=events, done=done, usage=usage, content=content)
                res["ok"] = resp.status == 200 and done and content == EXPECTED_CONTENT
        except urllib.error.HTTPError as exc:
            res["status"] = exc.code
            res["error"] = exc.read().decode(errors="replace")[:300]
        except Exception as exc:
            res["error"] = f"{type(exc).__name__}: {exc}"[:300]
        out[mode] = res
    return out
