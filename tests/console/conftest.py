"""A browser per test session, and a tab per test that must end without errors shown."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from console_browser import CHROMIUM, Tab, launch

playwright_api = pytest.importorskip("playwright.sync_api")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture
def tab(browser: object) -> Iterator[Tab]:
    t = Tab.open(browser)  # type: ignore[arg-type]
    yield t
    t.close()
