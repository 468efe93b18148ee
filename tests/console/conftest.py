"""A browser per test module, and a tab per test that must end without errors shown.

Per module, not per session: Playwright's sync API keeps an event loop running in the thread
while it lives, and every later test that runs its own loop (`asyncio.run`) would fail."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_browser import CHROMIUM, Tab, launch


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):  # a console test that cannot run has not passed
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)", pytrace=False)
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture
def tab(browser: Any, tmp_path: Path) -> Iterator[Tab]:
    t = Tab.open(browser, tmp_path)
    yield t
    t.close()
