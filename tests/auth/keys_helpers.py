"""Keys made the way users make them (the `turnout keys` command) and gateways that need them."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import orjson
from upstream import ScriptedUpstream

from turnout.cli import main

PRICE = "price: {input_per_mtok: 1000.0, output_per_mtok: 1000.0}"


def keys_cli(store: Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["keys", *args, "--store", f"sqlite:///{store}"])
    return code, out.getvalue()


def create_key(store: Path, *flags: str) -> dict[str, Any]:
    code, out = keys_cli(store, "create", "--json", *flags)
    assert code == 0, out
    created: dict[str, Any] = orjson.loads(out)
    return created


def gateway_yaml(
    upstream: ScriptedUpstream, store: Path, auth: str = "{mode: keys}", price: str = ""
) -> str:
    extra = f", {price}" if price else ""
    return f"""
deployments:
  up: {{kind: openai, base_url: "{upstream.base_url}", model: m{extra}}}
models:
  chat: {{deployments: [up]}}
  other: {{deployments: [up]}}
store: {{url: "sqlite:///{store}", flush_interval_s: 0.05}}
auth: {auth}
"""
