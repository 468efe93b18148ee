"""Real models for the fingerprint tests, loaded once per session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from turnout.backends.embedded import EmbeddedBackend


def _served(model: str) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(model, model, max_concurrency=2)
    asyncio.run(backend.start())
    yield backend
    asyncio.run(backend.close())


@pytest.fixture(scope="session")
def smollm2() -> Iterator[EmbeddedBackend]:
    yield from _served("smollm2-135m")


@pytest.fixture(scope="session")
def gemma() -> Iterator[EmbeddedBackend]:
    yield from _served("gemma3-270m")
