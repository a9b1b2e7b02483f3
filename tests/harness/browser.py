"""Headless Chromium for page tests: Debian's ``chromium`` driven by Playwright.

No browser is downloaded: Playwright launches the system binary. Outside CI a
machine without it skips these tests (like the PostgreSQL ones); under
``CI=true`` a missing browser fails them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("TRADER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("TRADER_TEST_ARTIFACTS")
                 or Path(__file__).resolve().parents[2] / "test-artifacts")


def require_chromium() -> str:
    """The browser's path; fails under CI when it is missing, skips elsewhere."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    message = (f"headless Chromium not found at {CHROMIUM}: apt-get install chromium "
               "(or set TRADER_CHROMIUM)")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def browser_page(offline: bool = True) -> Iterator[tuple[Any, list[str]]]:
    """A fresh page; with ``offline`` every request that is not file:// or loopback is
    blocked and listed (the second item), so a test can assert the page needs none."""
    path = require_chromium()
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            if offline:
                def guard(route: Any) -> None:
                    url = route.request.url
                    if url.startswith(("file:", "data:", "http://127.0.0.1", "about:")):
                        route.continue_()
                    else:
                        blocked.append(url)
                        route.abort()

                page.route("**/*", guard)
            yield page, blocked
        finally:
            browser.close()


def save_screenshot(page: Any, name: str) -> Path:
    """A full-page screenshot kept as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    return target
