"""The dashboard loads in a real browser under its Content-Security-Policy and follows a run."""

from __future__ import annotations

from typing import Any

from dashboard_server import DashboardServer
from playwright.sync_api import Page, expect

SLOW: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "smoke",
    "strategy": "sequential",
    "steps": [
        {"id": "first", "agent": "echo", "input": {"n": 1}},
        {"id": "wait", "agent": "sleep", "input": {"seconds": 1.0}},
        {"id": "last", "agent": "echo", "input": {"n": 2}},
    ],
}


def test_root_redirects_to_the_executions_list(page: Page, dashboard: DashboardServer) -> None:
    """Opening the server's root shows the executions list, with a run in it."""
    execution_id = dashboard.run(SLOW)
    page.goto(dashboard.url + "/")
    expect(page).to_have_url(dashboard.url + "/ui/")
    expect(page.locator(f'tr[data-execution-id="{execution_id}"]')).to_contain_text("succeeded")


def test_a_step_turns_succeeded_while_the_page_watches(
    page: Page, dashboard: DashboardServer
) -> None:
    """The execution page shows a running step, then its success, without a reload."""
    execution_id = dashboard.start(SLOW)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    last = page.locator('[data-step-id="last"] .status')
    expect(last).to_have_text("succeeded", timeout=15_000)
    expect(page.locator("#execution-status")).to_have_text("succeeded")


def test_an_unknown_execution_renders_a_404_page(
    page: Page, dashboard: DashboardServer, browser_problems: list[str]
) -> None:
    """An execution id the journal does not know answers a readable 404 page."""
    response = page.goto(f"{dashboard.url}/ui/executions/nope")
    assert response is not None
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page.locator(".detail")).to_contain_text("nope")
    assert browser_problems == [
        "console error: Failed to load resource: the server responded with a status of 404 ()"
    ]
    browser_problems.clear()
