"""Small samples of real traffic, recorded once through a real gateway on SmolLM2-135M."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_harness import RunningGateway, start_gateway
from migrate_helpers import (
    CHATS,
    COMPLETIONS,
    JSON_ASKS,
    MORE_CHATS,
    SYSTEM,
    Traffic,
    config_text,
)


def _chat(gw: RunningGateway, question: str, **extra: Any) -> None:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    body = {"model": "local", "messages": messages, "max_tokens": 16, "temperature": 0, **extra}
    assert gw.post("/v1/chat/completions", body).status_code == 200


def _record(root: Path, chats: tuple[str, ...], json_asks: tuple[str, ...] = ()) -> Traffic:
    store = root / "turnout.db"
    config = root / "turnout.yaml"
    config.write_text(config_text(store))
    gw = start_gateway(config.read_text(), store)
    try:
        for prompt in COMPLETIONS:
            body = {"model": "text", "prompt": prompt, "max_tokens": 16, "temperature": 0}
            assert gw.post("/v1/completions", body).status_code == 200
        for question in chats:
            _chat(gw, question)
        for ask in json_asks:
            _chat(gw, ask, max_tokens=32, response_format={"type": "json_object"})
        gw.gateway.writer.flush()
    finally:
        gw.stop()
    return Traffic(config, store)


@pytest.fixture(scope="session")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    """27 requests: 12 completions (model `text`), 15 chats (model `local`), all on `edge`."""
    yield _record(tmp_path_factory.mktemp("migrate"), CHATS)


@pytest.fixture(scope="session")
def traffic60(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    """60 requests on `edge`: 12 completions, 39 chats and 9 chats that ask for JSON — the size
    people replay, with one check (json_match) that covers only part of it."""
    yield _record(tmp_path_factory.mktemp("migrate60"), CHATS + MORE_CHATS, JSON_ASKS)
