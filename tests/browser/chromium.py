"""Debian's chromium as Playwright drives it, for the browser tests and `make screenshots`: never
a downloaded browser, and no network of its own (everything a page needs is served by us). No
Django or pytest import: the screenshot command runs outside both."""

from __future__ import annotations

import os
import shutil

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
