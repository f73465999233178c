"""What the admin's browser tests share: the width the lists must fit, how to measure that, where
screenshots go, and signing in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.factories import PASSWORD

WIDTH = 1400

# The page's own width, and the widest list table's overflow inside its scrolling box (the admin
# scrolls a too-wide table there instead of widening the page, which cuts it off just the same).
OVERFLOW = """() => {
  const results = document.querySelector('#changelist .results');
  return {
    page: document.documentElement.scrollWidth,
    table: results ? results.scrollWidth - results.clientWidth : 0,
    rows: document.querySelectorAll('#result_list tbody tr').length,
  };
}"""


def screenshots(tmp_path: Path) -> Path:
    """ADMIN_SCREENSHOTS when a person wants to look at the pages, else the test's own folder."""
    folder = os.environ.get("ADMIN_SCREENSHOTS")
    if not folder:
        return tmp_path
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder)


def admin_signed_in(page: Any, base_url: str, user: Any) -> Any:
    """``page`` at WIDTH, signed in to the admin as ``user`` (whose password is the factories')."""
    page.set_viewport_size({"width": WIDTH, "height": 900})
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base_url}/admin/")
    return page
