"""A small sample of real traffic, recorded once through a real gateway on SmolLM2-135M."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_harness import start_gateway
from migrate_helpers import CHATS, COMPLETIONS, SYSTEM, Traffic, config_text


@pytest.fixture(scope="session")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    root = tmp_path_factory.mktemp("migrate")
    store = root / "turnout.db"
    config = root / "turnout.yaml"
    config.write_text(config_text(store))
    gw = start_gateway(config.read_text(), store)
    try:
        for prompt in COMPLETIONS:
            body = {"model": "text", "prompt": prompt, "max_tokens": 16, "temperature": 0}
            assert gw.post("/v1/completions", body).status_code == 200
        for question in CHATS:
            messages = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": question},
            ]
            body = {"model": "local", "messages": messages, "max_tokens": 16, "temperature": 0}
            assert gw.post("/v1/chat/completions", body).status_code == 200
        gw.gateway.writer.flush()
    finally:
        gw.stop()
    yield Traffic(config, store)
