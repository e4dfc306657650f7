"""Browser tests of the dashboard: Debian's Chromium driven by Playwright, against a real server.

Each test gets a real `orchestr8 serve --port 0` on 127.0.0.1 over its own SQLite journal
(`dashboard`), and a fresh browser page (`page`) that fails the test on any console error or
uncaught exception, so a Content-Security-Policy violation or a script error never passes
silently. Where no Chromium is installed these tests skip, saying so; `.ci/run` installs it and
sets `ORCHESTR8_BROWSER_TESTS=required`, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_server import DashboardServer, start_dashboard

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Chromium's flags here: root needs no sandbox; nothing may reach beyond loopback."""


def chromium_path() -> str | None:
    """Where Chromium is: `ORCHESTR8_CHROMIUM`, else `chromium` on the PATH, else None."""
    return os.environ.get("ORCHESTR8_CHROMIUM") or shutil.which("chromium")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/browser/ `browser` (`-m "not browser"` leaves them out)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium for the session (skips, or fails in CI, when none is installed)."""
    executable = chromium_path()
    if executable is None:
        message = "Chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("ORCHESTR8_BROWSER_TESTS") == "required":
            pytest.fail(message)
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        pytest.fail("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[DashboardServer]:
    """A real `orchestr8 serve --port 0` on 127.0.0.1 with its own journal, stopped after."""
    with start_dashboard(tmp_path / "journal.db") as server:
        yield server


class BrowserProblems(list[str]):
    """The console errors and uncaught exceptions of a test's page, while the test runs.

    Recording stops when the test's teardown begins, so what the page logs while the server it
    watched stops (a lost WebSocket, say) is never held against the test.
    """

    recording: bool = True

    def record(self, problem: str) -> None:
        """Keep `problem` if the test is still running."""
        if self.recording:
            self.append(problem)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Stop recording the page's problems before any fixture is torn down."""
    problems = getattr(item, "funcargs", {}).get("browser_problems")
    if isinstance(problems, BrowserProblems):
        problems.recording = False


@pytest.fixture
def browser_problems() -> BrowserProblems:
    """The console errors and uncaught exceptions of the test's page; a test expecting one
    (the 404 page's own status, say) checks and removes it, and whatever is left fails the test."""
    return BrowserProblems()


@pytest.fixture
def page(browser: object, browser_problems: BrowserProblems) -> Iterator[object]:
    """A fresh page (own cookies); the test fails on any console error or uncaught exception."""
    from playwright.sync_api import Browser, ConsoleMessage, Error

    assert isinstance(browser, Browser)
    context = browser.new_context()
    context.set_default_timeout(10_000)
    opened = context.new_page()
    problems = browser_problems

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.record(f"console error: {message.text}")

    def on_error(error: Error) -> None:
        problems.record(f"page error: {error}")

    opened.on("console", on_console)
    opened.on("pageerror", on_error)
    yield opened
    context.close()
    assert not problems, "\n".join(problems)
