"""A real browser for the browser tests: Debian's Chromium, driven by Playwright's Python package.

Chromium comes from the machine's package registry (`apt-get install chromium`), installed here when it
is missing and we may (root, apt-get present): Playwright's own browser downloads come from outside the
registries and fail here. Flags as this machine needs them: no sandbox (tests run as root), no
background networking (its connections are refused here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def ensure_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread while it is open,
    and the in-process ASGI tests need the thread's loop free (asyncio.run) when they run after."""
    executable = ensure_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable), headless=True, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, tmp_path) -> Iterator[object]:
    """A fresh page; a screenshot of it lands in the test's temporary folder whatever the outcome."""
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    opened.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)
    context.close()
