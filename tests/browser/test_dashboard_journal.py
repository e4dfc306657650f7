"""The execution page's journal and time travel, in a real browser: filters, paging, the state."""

from __future__ import annotations

import re
from typing import Any

from dashboard_server import RETRIED, DashboardServer
from playwright.sync_api import Page, expect

MANY: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "many",
    "strategy": "sequential",
    "steps": [{"id": f"s{index:02d}", "agent": "echo", "input": index} for index in range(40)],
}
SLOW: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "slow",
    "strategy": "sequential",
    "steps": [
        {"id": "nap", "agent": "sleep", "input": {"seconds": 1.0}},
        {"id": "after", "agent": "echo", "input": 1},
    ],
}


def open_journal(page: Page, dashboard: DashboardServer, execution_id: str) -> None:
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    page.get_by_role("tab", name="Journal").click()


def rows(page: Page) -> Any:
    return page.locator("#journal .journal-table tbody tr")


def test_the_journal_is_newest_first_and_filters_by_type_and_step(
    page: Page, dashboard: DashboardServer
) -> None:
    """The last event is on top; ticking a type or naming a step keeps only those events."""
    execution_id = dashboard.run(RETRIED)
    last = len(dashboard.client.get(f"/executions/{execution_id}/journal").json()["events"])
    open_journal(page, dashboard, execution_id)
    expect(rows(page).first).to_have_attribute("data-seq", str(last))
    expect(rows(page).first).to_contain_text("execution.succeeded")
    page.get_by_text("Event types").click()
    page.get_by_label("attempt.failed").check()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("fail agent: attempt 1 failed")
    page.get_by_label("attempt.failed").uncheck()
    page.get_by_label("Step (with its items and iterations)").fill("flaky")
    page.get_by_label("Step (with its items and iterations)").press("Enter")
    expect(page.locator("#journal .journal-filter-text")).to_have_text("Showing step flaky")
    flaky = dashboard.client.get(f"/executions/{execution_id}/journal?step=flaky").json()
    expect(rows(page)).to_have_count(len(flaky["events"]))
    expect(page.locator("#journal tbody tr td:nth-child(5)")).to_have_text(
        ["flaky"] * len(flaky["events"])
    )
    page.get_by_role("button", name="Clear filters").click()
    expect(rows(page)).to_have_count(last)


def test_older_events_come_a_page_at_a_time(page: Page, dashboard: DashboardServer) -> None:
    """A long journal shows its newest 100 events; "Older events" brings the rest, down to 1."""
    execution_id = dashboard.run(MANY)
    total = dashboard.client.get(f"/executions/{execution_id}/timeline").json()["last_seq"]
    open_journal(page, dashboard, execution_id)
    expect(rows(page)).to_have_count(100)
    page.get_by_role("button", name="Older events").click()
    expect(rows(page)).to_have_count(total)
    expect(rows(page).last).to_have_attribute("data-seq", "1")
    expect(page.get_by_role("button", name="Older events")).to_be_hidden()


def test_an_event_shows_the_state_at_it_with_the_changed_step_marked(
    page: Page, dashboard: DashboardServer
) -> None:
    """Clicking an event (or Enter on it) shows the state there; the changed step says so."""
    execution_id = dashboard.run(RETRIED)
    open_journal(page, dashboard, execution_id)
    failed = page.locator('#journal tr[data-type="attempt.failed"]')
    failed.click()
    view = page.locator("#state-view")
    seq = failed.get_attribute("data-seq")
    expect(view.get_by_role("heading", name=f"State at event {seq}")).to_be_visible()
    changed = view.locator('tr[data-unit="flaky"]')
    expect(changed).to_have_attribute("data-changed", "true")
    expect(changed).to_contain_text("changed: error")
    expect(changed.locator(".status")).to_have_text("running")
    expect(view.locator('tr[data-unit="first"]')).not_to_have_attribute("data-changed", "true")
    expect(failed).to_have_attribute("aria-selected", "true")
    view.get_by_role("button", name="Back to now").click()
    expect(view).to_be_hidden()
    started = page.locator('#journal tr[data-type="step.started"]').last
    started.focus()
    page.keyboard.press("Enter")
    expect(view).to_contain_text("started")
    expect(view.locator('tr[data-unit="first"]')).to_have_attribute("data-changed", "true")


def test_live_events_appear_on_top_as_they_happen(page: Page, dashboard: DashboardServer) -> None:
    """While the page watches, new events go on top of the journal without a reload."""
    execution_id = dashboard.start(SLOW)
    open_journal(page, dashboard, execution_id)
    expect(page.locator('#journal tr[data-type="attempt.started"]').first).to_be_visible()
    expect(rows(page).first).to_contain_text("execution.succeeded", timeout=15_000)
    expect(page.locator('#journal tr[data-type="execution.succeeded"]')).to_have_count(1)
    expect(page.locator('#journal tr[data-type="execution.started"]')).to_have_count(1)


PAUSED: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "paused",
    "strategy": "sequential",
    "steps": [
        *({"id": f"quick{index}", "agent": "echo", "input": index} for index in range(6)),
        {"id": "nap", "agent": "sleep", "input": {"seconds": 3.0}},
        {"id": "after", "agent": "echo", "input": 1},
    ],
}


def test_new_events_wait_behind_a_button_while_the_reader_scrolled_down(
    page: Page, dashboard: DashboardServer
) -> None:
    """Scrolled down, the rows stay put and a button counts the new events; it shows them."""
    page.set_viewport_size({"width": 1200, "height": 400})
    execution_id = dashboard.start(PAUSED)
    open_journal(page, dashboard, execution_id)
    expect(page.locator('#journal tr[data-type="attempt.started"]').first).to_be_visible()
    scroller = page.locator("#journal .journal-scroll")
    scroller.evaluate("(element) => { element.scrollTop = 60; }")
    button = page.locator("#journal .journal-new")
    expect(button).to_have_text(re.compile(r"^\d+ new events? — show them$"), timeout=15_000)
    assert scroller.evaluate("(element) => element.scrollTop") > 0
    expect(rows(page).first).not_to_contain_text("execution.succeeded")
    dashboard.wait_for_status(execution_id, "succeeded")
    button.click()
    expect(rows(page).first).to_contain_text("execution.succeeded")
    expect(button).to_be_hidden()


BIG: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "big",
    "steps": [
        *({"id": f"s{index}", "agent": "echo", "input": index} for index in range(30)),
        {"id": "fan", "agent": "echo", "for_each": "inputs.docs", "input": "${item}"},
    ],
}


def test_on_a_big_run_the_state_lists_the_changed_steps_first_and_all_on_request(
    page: Page, dashboard: DashboardServer
) -> None:
    """31 steps: only the changed ones until "Show all"; a map says its items' counts there."""
    execution_id = dashboard.run(BIG, {"docs": ["a", "b", "c", "d"]})
    open_journal(page, dashboard, execution_id)
    page.get_by_label("Step (with its items and iterations)").fill("fan")
    page.get_by_label("Step (with its items and iterations)").press("Enter")
    event = page.locator('#journal tr[data-type="step.succeeded"]', has_text="fan[2]")
    event.click()
    seq_cell = event.locator("td").first
    assert seq_cell.evaluate("cell => getComputedStyle(cell).whiteSpace") == "nowrap"
    view = page.locator("#state-view")
    table = view.locator(".state-steps tbody tr")
    expect(table.first).to_have_attribute("data-changed", "true")
    expect(table.first).to_have_attribute("data-unit", "fan[2]")
    show_all = view.get_by_role("button", name=re.compile(r"Show all 3\d steps"))
    expect(show_all).to_be_visible()
    # The item's map follows it, with its items counted at this event.
    expect(table).to_have_count(2)
    expect(table.nth(1)).to_have_attribute("data-unit", "fan")
    expect(table.nth(1)).to_contain_text(re.compile(r"4 items: [1-4] succeeded"))
    show_all.click()
    expect(view.locator('tr[data-unit="s0"]')).to_have_count(1)
    expect(table.first).to_have_attribute("data-unit", "fan[2]")
    view.get_by_role("button", name="Show only the changed steps").click()
    expect(view.locator('tr[data-unit="s0"]')).to_have_count(0)
