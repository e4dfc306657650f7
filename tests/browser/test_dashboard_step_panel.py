"""The step panel in a real browser: a retried step's attempts, inputs and output."""

from __future__ import annotations

from typing import Any

from dashboard_server import DashboardServer
from playwright.sync_api import Page, expect

RETRIED: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "retried",
    "steps": [
        {"id": "first", "agent": "echo", "input": {"topic": "${inputs.topic}"}},
        {
            "id": "flaky",
            "agent": {"id": "fail", "config": {"times": 1, "message": "not yet"}},
            "depends_on": ["first"],
            "input": {"text": "${steps.first.output.topic}"},
            "policy": {"retry": {"max_attempts": 2, "initial_delay": 0.01, "jitter": "none"}},
        },
    ],
}


def test_the_panel_shows_a_retried_steps_attempts_inputs_and_output(
    dashboard: DashboardServer, page: Page
) -> None:
    """Two attempts (failed, then succeeded), the declared and resolved input, the output."""
    execution_id = dashboard.run(RETRIED, {"topic": "owls"})
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}?step=flaky")
    panel = page.get_by_role("complementary", name="flaky")
    expect(panel.locator(".step-panel-head .status")).to_have_text("succeeded")
    attempts = panel.get_by_role("table", name="Attempts").locator("tbody tr[data-attempt]")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("failed")
    # The failed attempt's error has the row under it, across the table.
    error = panel.locator('tr[data-attempt="1"] + tr.attempt-error-row')
    expect(error).to_contain_text("not yet")
    expect(attempts.nth(1)).to_contain_text("succeeded")
    expect(panel.locator(".step-agent")).to_have_text("fail")
    resolved = panel.get_by_role("group", name="Resolved input")
    expect(resolved).to_contain_text('text: "owls"')
    panel.get_by_role("tab", name="Declared").click()
    expect(panel.get_by_role("group", name="Declared input")).to_contain_text(
        "${steps.first.output.topic}"
    )
    expect(panel.get_by_role("group", name="Output")).to_contain_text('"owls"')


def test_selecting_a_node_opens_the_panel_and_escape_gives_focus_back(
    dashboard: DashboardServer, page: Page
) -> None:
    """Activating a step's node opens its panel and leaves focus on the node; Escape closes it."""
    execution_id = dashboard.run(RETRIED, {"topic": "owls"})
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    # The node itself or the control inside it, whichever the graph makes activatable.
    node = page.locator(
        '#graph [data-step-id="first"]:is(button, [role="button"], [tabindex]),'
        ' #graph [data-step-id="first"] :is(button, [role="button"])'
    ).first
    node.click()
    panel = page.get_by_role("complementary", name="first")
    expect(panel).to_be_visible()
    expect(node).to_be_focused()
    page.keyboard.press("Tab")
    expect(panel.get_by_role("button", name="Close step details")).to_be_focused()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(node).to_be_focused()


def test_an_unknown_step_in_the_address_reads_as_an_error(
    dashboard: DashboardServer, page: Page, browser_problems: list[str]
) -> None:
    """`?step=` naming no step shows the problem in the panel, not a blank one."""
    execution_id = dashboard.run(RETRIED, {"topic": "owls"})
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}?step=nope")
    expect(page.locator("#step-panel [role=alert]")).to_contain_text("Step not found")
    expect(page.locator("#step-panel [role=alert]")).to_contain_text("'nope'")
    assert browser_problems == [
        "console error: Failed to load resource: the server responded with a status of 404 ()"
    ]
    browser_problems.clear()
