"""The compare page in a real browser: two runs of one workflow with different inputs."""

from __future__ import annotations

from typing import Any

from dashboard_server import DashboardServer
from playwright.sync_api import Page, expect

GREET: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "greet",
    "steps": [
        {"id": "fixed", "agent": "echo", "input": {"kind": "greeting"}},
        {"id": "greet", "agent": "echo", "input": {"name": "${inputs.name}", "lang": "en"}},
    ],
}
OTHER: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "other",
    "steps": [{"id": "solo", "agent": "echo", "input": 1}],
}


def test_compare_shows_the_changed_output_side_by_side(
    dashboard: DashboardServer, page: Page
) -> None:
    """Headers per run, one row per step, the changed key marked and the same ones folded."""
    first = dashboard.run(GREET, {"name": "Ada"})
    second = dashboard.run(GREET, {"name": "Grace"})
    page.goto(f"{dashboard.url}/ui/compare?a={first}&b={second}")
    expect(page.get_by_role("region", name="Execution A")).to_contain_text("succeeded")
    expect(page.get_by_role("region", name="Execution B").get_by_role("link")).to_have_attribute(
        "href", f"/ui/executions/{second}"
    )
    expect(page.locator(".compare-summary")).to_contain_text("1 step differ")
    row = page.locator('tr[data-step-id="greet"]').first
    expect(row.locator(".output-verdict")).to_have_text("changed")
    changed = page.locator('.output-diff-row[data-step-id="greet"] .diff-row.changed')
    expect(changed).to_have_count(1)
    expect(changed).to_contain_text("name changed")
    expect(changed.locator(".diff-cell").nth(0)).to_have_text('"Ada"')
    expect(changed.locator(".diff-cell").nth(1)).to_have_text('"Grace"')
    expect(page.get_by_text("1 unchanged key")).to_be_visible()
    expect(page.locator('tr[data-step-id="fixed"] .output-verdict')).to_have_text("equal")


def test_steps_of_one_side_only_are_marked(dashboard: DashboardServer, page: Page) -> None:
    """Comparing two workflows marks each step with the side that has it."""
    first = dashboard.run(GREET, {"name": "Ada"})
    second = dashboard.run(OTHER)
    page.goto(f"{dashboard.url}/ui/compare?a={first}&b={second}")
    expect(page.locator('tr[data-step-id="solo"] th')).to_contain_text("only in B")
    expect(page.locator('tr[data-step-id="greet"] th')).to_contain_text("only in A")
    expect(page.locator(".compare-summary")).to_contain_text("The workflows differ.")


def test_an_unknown_id_reads_as_an_error(
    dashboard: DashboardServer, page: Page, browser_problems: list[str]
) -> None:
    """An id the journal does not know says which one, in words."""
    first = dashboard.run(OTHER)
    page.goto(f"{dashboard.url}/ui/compare?a={first}&b=nope")
    expect(page.get_by_role("alert")).to_contain_text("b: no execution 'nope'")
    assert browser_problems == [
        "console error: Failed to load resource: the server responded with a status of 404 ()"
    ]
    browser_problems.clear()


NAP: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "nap",
    "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": "${inputs.seconds}"}}],
}


def test_the_short_ids_the_pages_show_are_enough_to_compare(
    dashboard: DashboardServer, page: Page
) -> None:
    """8-character prefixes resolve to their executions; the inputs fit a whole id."""
    first = dashboard.run(GREET, {"name": "Ada"})
    second = dashboard.run(GREET, {"name": "Grace"})
    page.goto(f"{dashboard.url}/ui/compare?a={first[:8]}&b={second[:8]}")
    expect(page.locator('tr[data-step-id="greet"] .output-verdict')).to_have_text("changed")
    expect(page.get_by_role("region", name="Execution A").get_by_role("link")).to_have_attribute(
        "href", f"/ui/executions/{first}"
    )
    field = page.get_by_label("First")
    field.fill(first)
    assert field.evaluate("(input) => input.scrollWidth <= input.clientWidth")


def test_a_prefix_of_several_executions_is_called_ambiguous(
    dashboard: DashboardServer, page: Page
) -> None:
    """A prefix that starts more than one id says how many, not 'no execution'."""
    ids = [dashboard.start(OTHER) for _ in range(17)]
    shared = next(char for char in "0123456789abcdef" if sum(i[0] == char for i in ids) > 1)
    count = sum(i[0] == shared for i in ids)
    page.goto(f"{dashboard.url}/ui/compare?a={shared}&b={ids[0]}")
    error = page.get_by_role("alert")
    expect(error).to_contain_text(f"ambiguous: {count} executions start with “{shared}”")


def test_a_step_one_side_has_not_finished_says_so(dashboard: DashboardServer, page: Page) -> None:
    """A step still running in B reads 'not finished in B', not 'changed'."""
    first = dashboard.run(NAP, {"seconds": 0})
    second = dashboard.start(NAP, {"seconds": 60})
    dashboard.wait_for_status(second, "running")
    page.goto(f"{dashboard.url}/ui/compare?a={first}&b={second}")
    verdict = page.locator('tr[data-step-id="nap"] .output-verdict')
    expect(verdict).to_have_text("not finished in B")
    expect(page.locator('.output-diff-row[data-step-id="nap"]')).to_have_count(0)
    dashboard.client.post(f"/executions/{second}/cancel", json={})
