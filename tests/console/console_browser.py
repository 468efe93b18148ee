"""Debian's Chromium, headless, driven by Playwright: a page that notes every error it shows.

No browser is downloaded: the system's /usr/bin/chromium runs, or the tests are skipped.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


def launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)


@dataclass
class Tab:
    """A browser tab and what went wrong in it: console errors, uncaught exceptions, 5xx."""

    page: Page
    errors: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Browser) -> Tab:
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        tab = cls(context.new_page())
        tab.page.on("console", tab._console)
        tab.page.on("pageerror", tab._exception)
        tab.page.on(
            "response", lambda r: r.status >= 500 and tab.errors.append(f"{r.status} {r.url}")
        )
        return tab

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def _exception(self, error: Error) -> None:
        self.errors.append(str(error))

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.page.context.close()
