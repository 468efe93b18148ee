"""The public API: what `import turnout` offers, and that importing it stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import turnout

SERVER_STACK = ("aiohttp", "uvicorn", "llama_cpp")


def _fresh(code: str) -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


def test_import_turnout_does_not_load_the_server_stack() -> None:
    loaded = _fresh(
        "import json, sys, turnout\n"
        f"print(json.dumps({{'loaded': [m for m in {SERVER_STACK!r} if m in sys.modules]}}))"
    )
    assert loaded == {"loaded": []}


def test_every_public_name_resolves_and_is_what_its_module_defines() -> None:
    from turnout.backends.base import Backend
    from turnout.config import load_config
    from turnout.errors import TurnoutError
    from turnout.gateway import Gateway

    assert sorted(turnout.__all__) == sorted(set(turnout.__all__))
    for name in turnout.__all__:
        assert getattr(turnout, name) is not None, name
    assert turnout.Gateway is Gateway and turnout.load_config is load_config
    assert turnout.Backend is Backend and turnout.TurnoutError is TurnoutError
    assert issubclass(turnout.ConfigError, turnout.TurnoutError)
    assert issubclass(turnout.UpstreamError, turnout.TurnoutError)
    assert set(turnout.__all__) <= set(dir(turnout))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        turnout.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
