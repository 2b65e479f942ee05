"""Browser tests: headless Debian Chromium driven by Playwright against the whole running system."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright
from taskmesh.system import LogPrinter, System, run_system

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOG = Path(tempfile.gettempdir()) / "taskmesh-browser-system.log"


# Module scope, not session: Playwright's sync API keeps an event loop running (and switches
# greenlets) while it lives, which breaks `asyncio.run` and `ast` in suites that run after this one.
@pytest.fixture(scope="module")
def system() -> Iterator[System]:
    """Taskmesh started exactly as `taskmesh up` starts it, on free ports, with fresh data."""
    data_dir = Path(tempfile.mkdtemp(prefix="taskmesh-browser-"))
    try:
        with (
            LOG.open("w") as log,
            run_system(
                data_dir / "data",
                ports="free",
                fresh=True,
                durable=False,
                printer=LogPrinter(log, colour=False),
                ready_timeout=120,
            ) as running,
        ):
            yield running
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright, require_program: Callable[[str], str]) -> Iterator[Browser]:
    """Debian's Chromium; Playwright never downloads a browser of its own."""
    executable = require_program("chromium")
    browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
