"""The step panel in a real browser: a retried step's attempts, inputs and output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cli_processes import environment
from dashboard_server import DashboardServer
from link_proxy import link_proxy
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


NETWORK_ERROR = re.compile(r"Failed to load resource|WebSocket connection to|net::ERR_")
SLOW_STEP: dict[str, Any] = {"id": "nap", "agent": "sleep", "input": {"seconds": 60}}
MAPPED: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "mapped",
    "steps": [
        {"id": "fetch", "agent": "echo", "input": {"xs": [1, 2]}},
        {
            "id": "each",
            "agent": "echo",
            "for_each": "steps.fetch.output.xs",
            "depends_on": ["fetch"],
            "input": {"x": "${item}"},
        },
    ],
}


def test_the_selected_step_is_kept_in_the_address_and_closing_removes_it(
    dashboard: DashboardServer, page: Page
) -> None:
    """Selecting writes `?step=` (brackets encoded); a reload shows that step; closing drops it."""
    execution_id = dashboard.run(MAPPED)
    address = f"{dashboard.url}/ui/executions/{execution_id}"
    page.goto(address)
    page.locator('.graph-node[data-step-id="fetch"]').click()
    expect(page).to_have_url(f"{address}?step=fetch")
    page.locator('.graph-node[data-step-id="each"]').click()
    page.locator("#step-panel").get_by_role("button", name="each[1]").click()
    expect(page).to_have_url(f"{address}?step=each%5B1%5D")
    page.reload()
    expect(page.get_by_role("complementary", name="each[1]")).to_be_visible()
    page.get_by_role("button", name="Close step details").click()
    expect(page).to_have_url(address)


WORDED: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "worded",
    "steps": [
        {"id": "review", "approval": {"prompt": "Ship it?"}},
        {
            "id": "ship",
            "agent": "echo",
            "depends_on": ["review"],
            "when": "steps.review.output.approved",
            "input": {},
        },
        {"id": "broken", "agent": "fail", "depends_on": ["review"], "input": {}},
    ],
}


def test_skipped_failed_and_approval_steps_say_what_happened(
    dashboard: DashboardServer, page: Page
) -> None:
    """Skipped shows its reason, failed says so, an approval shows its gate's answer and by whom."""
    execution_id = dashboard.start(WORDED)
    address = f"{dashboard.url}/ui/executions/{execution_id}"
    page.goto(address)
    expect(page.locator('[data-gate-id="review"]')).to_contain_text("Ship it?")
    answer = {"approve": False, "reason": "not today", "by": "ann"}
    response = dashboard.client.post(f"/executions/{execution_id}/gates/review", json=answer)
    assert response.status_code in (200, 202), response.text
    dashboard.wait_for_status(execution_id, "failed", "succeeded")
    page.goto(f"{address}?step=ship")
    panel = page.get_by_role("complementary", name="ship")
    expect(panel.locator(".step-no-output")).to_have_text(re.compile(r"^Skipped: .+"))
    expect(panel).to_contain_text("No attempts: the step was skipped.")
    page.goto(f"{address}?step=broken")
    panel = page.get_by_role("complementary", name="broken")
    expect(panel.locator(".step-no-output")).to_have_text("No output: the step failed.")
    page.goto(f"{address}?step=review")
    panel = page.get_by_role("complementary", name="review")
    expect(panel.locator(".step-panel-head .status")).to_have_text("succeeded")
    gate = panel.locator(".gate-facts")
    expect(gate.locator(".status")).to_have_text("rejected")
    expect(gate).to_contain_text("Ship it?")
    expect(gate).to_contain_text("ann")
    expect(gate).to_contain_text("not today")
    expect(panel.locator(".step-agent")).to_have_count(0)
    expect(panel.get_by_role("table", name="Attempts")).to_have_count(0)


def test_a_step_whose_run_was_killed_reads_interrupted(
    dashboard: DashboardServer, page: Page, tmp_path: Path
) -> None:
    """`orchestr8 run` SIGKILLed mid-step: the node, the panel and its attempt say interrupted."""
    workflow = tmp_path / "slow.json"
    slow = {"schema_version": "1.0", "name": "slow", "steps": [SLOW_STEP]}
    workflow.write_text(json.dumps(slow))
    command = [sys.executable, "-m", "orchestr8", "run", str(workflow)]
    process = subprocess.Popen(
        [*command, "--journal", str(dashboard.journal)],
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert first.startswith("execution "), first
        execution_id = first.split()[1]
        page.goto(f"{dashboard.url}/ui/executions/{execution_id}?step=nap")
        running = page.get_by_role("complementary", name="nap")
        attempt = running.get_by_role("table", name="Attempts").locator("tbody tr[data-attempt]")
        expect(attempt.locator(".status")).to_have_text("running", timeout=15_000)
    finally:
        process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()
    # The open page learns it when the stream ends (4409 interrupted); a reload reads the same.
    panel = page.get_by_role("complementary", name="nap")
    expect(page.locator("#execution-status")).to_have_text("interrupted", timeout=15_000)
    expect(page.locator('.graph-node[data-step-id="nap"] .status')).to_have_text("interrupted")
    expect(panel.locator(".step-panel-head .status")).to_have_text("interrupted")
    page.reload()
    expect(page.locator("#execution-status")).to_have_text("interrupted")
    expect(page.locator('.graph-node[data-step-id="nap"] .status')).to_have_text("interrupted")
    panel = page.get_by_role("complementary", name="nap")
    expect(panel.locator(".step-panel-head .status")).to_have_text("interrupted")
    attempt = panel.get_by_role("table", name="Attempts").locator("tbody tr[data-attempt]")
    expect(attempt).to_have_count(1)
    expect(attempt.locator(".status")).to_have_text("interrupted")


def test_a_refresh_that_cannot_reach_the_server_keeps_the_panel(
    dashboard: DashboardServer, page: Page, browser_problems: list[str]
) -> None:
    """Offline, reading the step again keeps what the panel shows, says so, and never errors."""
    execution_id = dashboard.run(RETRIED, {"topic": "owls"})
    port = urlsplit(dashboard.url).port
    assert port is not None
    with link_proxy(port) as proxy:
        page.goto(f"{proxy.url}/ui/executions/{execution_id}?step=flaky")
        panel = page.get_by_role("complementary", name="flaky")
        expect(panel.locator(".step-panel-head .status")).to_have_text("succeeded")
        proxy.cut()
        page.locator('.graph-node[data-step-id="flaky"]').click()
        expect(panel.locator(".step-stale")).to_have_text(
            "Shown as last read: the server cannot be reached."
        )
        expect(panel.get_by_role("alert")).to_have_count(0)
        expect(
            panel.get_by_role("table", name="Attempts").locator("tr[data-attempt]")
        ).to_have_count(2)
        proxy.restore()
        page.locator('.graph-node[data-step-id="flaky"]').click()
        expect(panel.locator(".step-stale")).to_have_count(0)
        expect(panel.locator(".step-panel-head .status")).to_have_text("succeeded")
    # The browser logs the refused requests; nothing else may show up.
    unexpected = [problem for problem in browser_problems if not NETWORK_ERROR.search(problem)]
    assert unexpected == []
    browser_problems.clear()
