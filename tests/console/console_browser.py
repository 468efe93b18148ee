"""Debian's Chromium, headless, driven by Playwright: a page that notes every error it shows.

No browser is downloaded: the system's /usr/bin/chromium runs, or the tests are skipped.
"""

from __future__ import annotations

import os
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
DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"
PNG = b"\x89PNG\r\n\x1a\n"


def launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)


@dataclass
class Tab:
    """A browser tab and what went wrong in it: console errors, uncaught exceptions, 5xx."""

    page: Page
    shots: Path
    errors: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Browser, shots: Path) -> Tab:
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        tab = cls(context.new_page(), shots)
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
        """Every run takes it (into the test's own folder); docs/ gets it only when asked."""
        image = self.page.screenshot(full_page=True)
        assert image.startswith(PNG) and len(image) > 1000, name
        (self.shots / f"{name}.png").write_bytes(image)
        if os.environ.get("TURNOUT_UPDATE_SCREENSHOTS") == "1":
            DOCS.mkdir(parents=True, exist_ok=True)
            (DOCS / f"{name}.png").write_bytes(image)

    def close(self) -> None:
        self.page.context.close()
