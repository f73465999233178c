"""The real browser the browser tests drive: Debian's chromium through Playwright, with no
network of its own (everything a page needs is served by us)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.chromium import CHROMIUM, FLAGS
from tests.conftest import _unavailable


@pytest.fixture
def browser_page(monkeypatch):
    if not Path(CHROMIUM).exists():
        _unavailable("needs Debian's chromium (apt-get install chromium)")
    # Playwright's sync API keeps an event loop on this thread; Django would then refuse the
    # test's own (synchronous) ORM calls. The server under test runs in its own thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        yield page
        browser.close()
