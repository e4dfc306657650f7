"""The execution page under a stream of events, in a real browser: live work without re-reading."""

from __future__ import annotations

from typing import Any

from dashboard_server import DashboardServer
from playwright.sync_api import Page, Route, expect

NAP_THEN_RETRY: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "nap-then-retry",
    "steps": [
        {"id": "nap", "agent": "sleep", "input": {"seconds": 1.5}},
        {
            "id": "flaky",
            "agent": {"id": "fail", "config": {"times": 1}},
            "depends_on": ["nap"],
            "input": "x",
            "policy": {"retry": {"max_attempts": 2, "initial_delay": 0.05}},
        },
    ],
}


def test_the_timeline_draws_live_events_without_reading_the_timeline_again(
    page: Page, dashboard: DashboardServer
) -> None:
    """With every read after the first held back, a new step's attempts, retry and end show."""
    held: list[Route] = []
    reads: list[str] = []

    def timeline(route: Route) -> None:
        reads.append(route.request.url)
        if len(reads) == 1:
            route.continue_()
        else:
            held.append(route)

    page.route("**/executions/*/timeline*", timeline)
    execution_id = dashboard.start(NAP_THEN_RETRY)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    expect(page.locator('#timeline .row[data-step-id="nap"] .seg-running')).to_have_count(1)
    row = page.locator('#timeline .row[data-step-id="flaky"]')
    expect(row.locator('.seg-failed[data-attempt="1"]')).to_have_count(1, timeout=15_000)
    expect(row.locator('.seg-wait[data-attempt="1"]')).to_have_count(1)
    expect(row.locator('.seg-attempt[data-attempt="2"]')).to_have_count(1)
    label = page.locator('#timeline .row-label[data-step-id="flaky"]')
    expect(label).to_have_attribute("aria-label", "flaky: succeeded, 2 attempts")
    expect(page.locator('#timeline .row[data-step-id="nap"] .seg-attempt')).to_have_count(1)
    assert dashboard.wait_for_status(execution_id, "succeeded") == "succeeded"
    for route in held:
        route.continue_()
    page.unroute("**/executions/*/timeline*")
    # The read the end of the run asked for agrees with what the events drew.
    expect(label).to_have_attribute("aria-label", "flaky: succeeded, 2 attempts")
    expect(row.locator('.seg-attempt[data-attempt="2"]')).to_have_count(1)


def test_the_hidden_journal_shows_the_events_that_came_while_it_was_hidden(
    page: Page, dashboard: DashboardServer
) -> None:
    """Events arriving while the timeline tab is shown are on top of the journal when it opens."""
    execution_id = dashboard.start(NAP_THEN_RETRY)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    expect(page.locator('#timeline .row[data-step-id="nap"]')).to_have_count(1)
    assert dashboard.wait_for_status(execution_id, "succeeded") == "succeeded"
    expect(page.locator("#execution-status")).to_have_text("succeeded")
    page.get_by_role("tab", name="Journal").click()
    newest = page.locator("#journal tbody tr").first
    expect(newest).to_have_attribute("data-type", "execution.succeeded")
    expect(page.locator('#journal tbody tr[data-type="retry.scheduled"]')).to_have_count(1)


NAP_THEN_FAN_OUT: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "nap-then-fan-out",
    "strategy": "parallel",
    "steps": [
        {"id": "nap", "agent": "sleep", "input": {"seconds": 1.5}},
        *(
            {"id": f"s{index}", "agent": "echo", "input": index, "depends_on": ["nap"]}
            for index in range(80)
        ),
    ],
}


def test_a_hidden_journal_that_missed_more_than_a_table_reads_the_newest_page(
    page: Page, dashboard: DashboardServer
) -> None:
    """Over 200 events while the journal was hidden: it shows the newest page; older on a click."""
    execution_id = dashboard.start(NAP_THEN_FAN_OUT)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    expect(page.locator('#timeline .row[data-step-id="nap"] .seg-running')).to_have_count(1)
    assert dashboard.wait_for_status(execution_id, "succeeded") == "succeeded"
    expect(page.locator("#execution-status")).to_have_text("succeeded")
    page.get_by_role("tab", name="Journal").click()
    expect(page.locator("#journal tbody tr").first).to_have_attribute(
        "data-type", "execution.succeeded"
    )
    expect(page.locator("#journal tbody tr")).to_have_count(100)
    page.get_by_role("button", name="Older events").click()
    expect(page.locator("#journal tbody tr")).to_have_count(200)
