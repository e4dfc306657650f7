"""The execution page's actions in a real browser: gate forms, cancel, resume and fork."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dashboard_server import DashboardServer
from playwright.sync_api import Page, expect

GATED: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "gated",
    "steps": [
        {
            "id": "review",
            "approval": {
                "prompt": "Ship it?",
                "schema": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "description": "Who signs off"},
                        "tier": {"enum": ["gold", "silver"], "default": "silver"},
                    },
                },
            },
        },
        {
            "id": "ship",
            "agent": "echo",
            "depends_on": ["review"],
            "when": "steps.review.output.approved",
            "input": {
                "by": "${steps.review.output.input.name}",
                "tier": "${steps.review.output.input.tier}",
            },
        },
    ],
}
SLEEPY: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "sleepy",
    "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 60}}],
}
FLAKY_MODULE = '''
from pathlib import Path

def flaky(input):
    """Fail until the file `fixed` exists beside this module: a fault fixed between runs."""
    if not (Path(__file__).parent / "fixed").exists():
        raise RuntimeError("the service is down")
    return input
'''
FLAKY: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "flaky",
    "steps": [
        {"id": "first", "agent": "echo", "input": {"n": "${inputs.n}"}},
        {
            "id": "call",
            "agent": {"id": "python", "config": {"callable": "flaky_agent:flaky"}},
            "depends_on": ["first"],
            "input": {"n": "${steps.first.output.n}"},
            "policy": {"retry": {"max_attempts": 1}},
        },
    ],
}


def open_gate(dashboard: DashboardServer, page: Page) -> str:
    """Start the gated workflow, open its page, and wait there for its gate's form."""
    execution_id = dashboard.start(GATED)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    expect(page.locator('[data-gate-id="review"]')).to_contain_text("Ship it?")
    return execution_id


def test_a_gate_form_approves_and_the_run_continues(dashboard: DashboardServer, page: Page) -> None:
    """The form built from the gate's schema approves; the next step gets the answer."""
    execution_id = open_gate(dashboard, page)
    gate = page.locator('[data-gate-id="review"]')
    expect(gate.get_by_label("tier")).to_have_value('"silver"')
    expect(gate.get_by_text("Who signs off")).to_be_visible()
    gate.get_by_label("name").fill("Ada")
    gate.get_by_label("tier").select_option(label="gold")
    gate.get_by_role("button", name="Approve").click()
    expect(page.locator("#execution-status")).to_have_text("succeeded", timeout=15_000)
    expect(gate).to_have_count(0)
    output = dashboard.execution(execution_id)["steps"]["ship"]["output"]
    assert output == {"by": "Ada", "tier": "gold"}


def test_a_wrong_answer_shows_the_error_next_to_its_field(
    dashboard: DashboardServer, page: Page, browser_problems: list[str]
) -> None:
    """Approving without the required name marks that field; the gate stays open."""
    execution_id = open_gate(dashboard, page)
    gate = page.locator('[data-gate-id="review"]')
    gate.get_by_role("button", name="Approve").click()
    expect(gate.get_by_label("name")).to_have_attribute("aria-invalid", "true")
    expect(gate.locator(".field-error:visible").first).to_contain_text(
        "'name' is a required property"
    )
    gates = dashboard.client.get(f"/executions/{execution_id}/gates").json()["gates"]
    assert [gate["status"] for gate in gates] == ["open"]
    assert browser_problems == [
        "console error: Failed to load resource: the server responded with a status of 422 ()"
    ]
    browser_problems.clear()


def test_a_gate_is_rejected_with_a_reason(dashboard: DashboardServer, page: Page) -> None:
    """Reject needs a reason; with one the gate resolves rejected and the guarded step skips."""
    execution_id = open_gate(dashboard, page)
    gate = page.locator('[data-gate-id="review"]')
    gate.get_by_role("button", name="Reject").click()
    expect(gate.get_by_role("alert")).to_have_text("A rejection needs a reason.")
    gate.get_by_label("Reason to reject").fill("not today")
    gate.get_by_role("button", name="Reject").click()
    expect(page.locator("#execution-status")).to_have_text("succeeded", timeout=15_000)
    document = dashboard.execution(execution_id)
    assert document["steps"]["review"]["output"]["approved"] is False
    assert document["steps"]["ship"]["status"] == "skipped"


def test_cancel_asks_first_then_stops_a_running_step(
    dashboard: DashboardServer, page: Page
) -> None:
    """Cancel opens a confirmation; keeping it running changes nothing; confirming cancels."""
    execution_id = dashboard.start(SLEEPY)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    cancel = page.get_by_role("button", name="Cancel…")
    expect(cancel).to_be_enabled()
    expect(page.get_by_role("button", name="Resume")).to_be_disabled()
    cancel.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Keep running").click()
    expect(dialog).to_be_hidden()
    assert dashboard.execution(execution_id)["status"] == "running"
    cancel.click()
    dialog.get_by_label("Reason (optional)").fill("enough")
    dialog.get_by_role("button", name="Cancel execution").click()
    expect(page.locator("#execution-status")).to_have_text("cancelled", timeout=15_000)
    expect(page.get_by_role("button", name="Resume")).to_be_enabled()
    expect(cancel).to_be_disabled()


def test_resume_of_a_failed_run_goes_live_and_succeeds(
    dashboard: DashboardServer, page: Page, tmp_path: Path
) -> None:
    """Resume is offered for a failed run; after it the page follows the run to its success."""
    (tmp_path / "flaky_agent.py").write_text(FLAKY_MODULE)
    execution_id = dashboard.run(FLAKY, {"n": 1})
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    expect(page.locator("#execution-status")).to_have_text("failed")
    (tmp_path / "fixed").write_text("")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#execution-status")).to_have_text("succeeded", timeout=15_000)
    expect(page.locator(".action-status")).to_contain_text("Resumed")
    expect(page.get_by_role("button", name="Resume")).to_be_disabled()


def test_fork_previews_its_plan_then_starts_and_opens_the_new_execution(
    dashboard: DashboardServer, page: Page, tmp_path: Path
) -> None:
    """Fork from a step: the dry-run plan names what reruns; starting goes to the new page."""
    (tmp_path / "flaky_agent.py").write_text(FLAKY_MODULE)
    (tmp_path / "fixed").write_text("")
    execution_id = dashboard.run(FLAKY, {"n": 1})
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    page.get_by_role("button", name="Fork…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Inputs (JSON)")).to_have_value('{\n  "n": 1\n}')
    dialog.get_by_label("Run again from step").select_option("call")
    dialog.get_by_label("Inputs (JSON)").fill('{"n": 2}')
    dialog.get_by_role("button", name="Preview").click()
    expect(dialog.locator(".fork-rerun")).to_contain_text("call")
    expect(dialog.locator(".fork-kept")).to_contain_text("first")
    dialog.get_by_role("button", name="Start fork").click()
    expect(page).not_to_have_url(f"{dashboard.url}/ui/executions/{execution_id}")
    expect(page.locator("#execution-status")).to_have_text("succeeded", timeout=15_000)
    new_id = page.url.rsplit("/", 1)[1]
    assert dashboard.execution(new_id)["forked_from"] == execution_id


DETAILED: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "detailed",
    "steps": [
        {
            "id": "review",
            "approval": {
                "prompt": "Details?",
                "schema": {
                    "type": "object",
                    "required": ["name", "signer"],
                    "properties": {
                        "name": {"type": "string"},
                        "amount": {"type": "number"},
                        "urgent": {"type": "boolean"},
                        "extra": {
                            "type": "object",
                            "required": ["depth"],
                            "properties": {"depth": {"type": "integer"}},
                        },
                        "signer": {
                            "type": "object",
                            "properties": {"team": {"type": "string"}},
                        },
                    },
                },
            },
        }
    ],
}
FLAKY_DONE: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "done",
    "steps": [{"id": "only", "agent": "echo", "input": 1}],
}
TYPED: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "typed",
    "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
    "steps": [{"id": "only", "agent": "echo", "input": "${inputs.n}"}],
}
LOOPY: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "loopy",
    "steps": [
        {"id": "first", "agent": "echo", "input": 1},
        {
            "id": "loopy",
            "agent": "echo",
            "input": 1,
            "depends_on": ["first"],
            "repeat": {"until": "`false`", "max_iterations": 2},
        },
    ],
}


def test_optional_fields_never_touched_are_left_out_of_the_answer(
    dashboard: DashboardServer, page: Page
) -> None:
    """An untouched optional box, number and object are not sent; required groups say so."""
    execution_id = dashboard.start(DETAILED)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    gate = page.locator('[data-gate-id="review"]')
    expect(gate.locator("legend", has_text="signer")).to_contain_text("(required)")
    expect(gate.locator("legend", has_text="extra")).not_to_contain_text("(required)")
    gate.get_by_label("name").fill("Ada")
    gate.get_by_label("team").fill("ops")
    gate.get_by_role("button", name="Approve").click()
    expect(page.locator("#execution-status")).to_have_text("succeeded", timeout=15_000)
    answer = dashboard.execution(execution_id)["steps"]["review"]["output"]["input"]
    assert answer == {"name": "Ada", "signer": {"team": "ops"}}


def test_a_number_too_big_to_be_finite_is_named_at_its_field(
    dashboard: DashboardServer, page: Page
) -> None:
    """1e400 is not silently dropped: the amount field says it is not a finite number."""
    execution_id = dashboard.start(DETAILED)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    gate = page.locator('[data-gate-id="review"]')
    gate.get_by_label("name").fill("Ada")
    gate.get_by_label("amount").fill("1e400")
    gate.get_by_role("button", name="Approve").click()
    expect(gate.get_by_label("amount")).to_have_attribute("aria-invalid", "true")
    expect(gate.locator(".field-error:visible")).to_have_text("not a finite number")
    gates = dashboard.client.get(f"/executions/{execution_id}/gates").json()["gates"]
    assert [gate["status"] for gate in gates] == ["open"]


def test_enter_in_the_reason_rejects_and_the_reason_error_clears_when_typed(
    dashboard: DashboardServer, page: Page
) -> None:
    """Enter rejects; the missing-reason error marks the field and goes once a reason is typed."""
    execution_id = open_gate(dashboard, page)
    gate = page.locator('[data-gate-id="review"]')
    reason = gate.get_by_label("Reason to reject")
    reason.press("Enter")
    expect(gate.get_by_role("alert")).to_have_text("A rejection needs a reason.")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(reason).to_be_focused()
    reason.press_sequentially("not today")
    expect(gate.get_by_role("alert")).to_have_count(0)
    expect(reason).not_to_have_attribute("aria-invalid", "true")
    reason.press("Enter")
    expect(page.locator("#execution-status")).to_have_text("succeeded", timeout=15_000)
    assert dashboard.execution(execution_id)["steps"]["review"]["output"]["approved"] is False


def test_the_heading_counts_open_gates_and_focus_lands_on_the_outcome(
    dashboard: DashboardServer, page: Page
) -> None:
    """'1 gate open' beside the status while it waits; answering says so where focus goes."""
    open_gate(dashboard, page)
    badge = page.locator("#execution-gates")
    expect(badge).to_have_text("1 gate open")
    expect(badge).to_be_visible()
    gate = page.locator('[data-gate-id="review"]')
    gate.get_by_label("name").fill("Ada")
    gate.get_by_role("button", name="Approve").click()
    status_line = page.locator(".action-status")
    expect(status_line).to_have_text("Gate 'review' approved.")
    expect(status_line).to_be_focused()
    expect(badge).to_be_hidden()


def test_enter_in_the_cancel_dialog_cancels_and_the_request_line_ends(
    dashboard: DashboardServer, page: Page
) -> None:
    """Enter in the reason field confirms; once cancelled no 'Cancel requested' stays."""
    execution_id = dashboard.start(SLEEPY)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    page.get_by_role("button", name="Cancel…").click()
    reason = page.get_by_role("dialog").get_by_label("Reason (optional)")
    reason.fill("enough")
    reason.press("Enter")
    expect(page.locator("#execution-status")).to_have_text("cancelled", timeout=15_000)
    expect(page.locator(".action-status")).to_have_text("Cancelled.")
    assert dashboard.execution(execution_id)["status"] == "cancelled"


def test_the_action_buttons_keep_their_place_beside_a_long_status_line(
    dashboard: DashboardServer, page: Page
) -> None:
    """A long outcome wraps under the buttons; the buttons do not move."""
    execution_id = dashboard.start(SLEEPY)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    cancel = page.get_by_role("button", name="Cancel…")
    expect(cancel).to_be_enabled()
    before = cancel.bounding_box()
    page.locator(".action-status").evaluate("(line) => { line.textContent = 'word '.repeat(60); }")
    assert cancel.bounding_box() == before
    dashboard.client.post(f"/executions/{execution_id}/cancel", json={})


def test_the_heading_shows_the_creation_time_in_local_time(
    dashboard: DashboardServer, page: Page
) -> None:
    """Created reads as local time; the UTC ISO value stays in its tooltip."""
    execution_id = dashboard.run(FLAKY_DONE)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    created = page.locator("#execution-created")
    iso = dashboard.execution(execution_id)["created_at"]
    expect(created).to_have_attribute("title", iso)
    expect(created).not_to_have_text(iso)
    expect(created).to_have_text(re.compile(r"\d{1,2}:\d{2}:\d{2}"))


def test_fork_offers_declared_steps_only(dashboard: DashboardServer, page: Page) -> None:
    """Loop iterations are not fork points: the dialog lists the workflow's own steps."""
    execution_id = dashboard.run(LOOPY)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    page.get_by_role("button", name="Fork…").click()
    options = page.get_by_role("dialog").get_by_label("Run again from step").locator("option")
    expect(options).to_have_text(["first", "loopy"])


def test_a_refused_fork_lists_its_problems_without_api_jargon(
    dashboard: DashboardServer, page: Page, browser_problems: list[str]
) -> None:
    """Inputs the workflow refuses: the problems are listed, no 'see errors' pointer."""
    execution_id = dashboard.run(TYPED, {"n": 1})
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    page.get_by_role("button", name="Fork…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Inputs (JSON)").fill('{"n": "one"}')
    dialog.get_by_role("button", name="Preview").click()
    error = dialog.get_by_role("alert")
    expect(error).to_contain_text("1 problem found")
    expect(error.locator("li")).to_contain_text("$.inputs.n")
    expect(error).not_to_contain_text("see errors")
    browser_problems.clear()


TWO_GATES: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "two-gates",
    "steps": [
        {"id": "first", "approval": {"prompt": "First?"}},
        {"id": "pause", "agent": "sleep", "input": {"seconds": 1}, "depends_on": ["first"]},
        {"id": "second", "approval": {"prompt": "Second?"}, "depends_on": ["pause"]},
    ],
}


def test_a_gate_read_lost_to_the_network_keeps_the_cards_until_the_next_read(
    dashboard: DashboardServer, page: Page, browser_problems: list[str]
) -> None:
    """A failed read while unreachable keeps the cards, no error box; the next read updates."""
    execution_id = dashboard.start(TWO_GATES)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    first = page.locator('[data-gate-id="first"]')
    expect(first).to_contain_text("First?")
    page.route("**/gates", lambda route: route.abort())
    with page.expect_event("requestfailed"):
        dashboard.client.post(f"/executions/{execution_id}/gates/first", json={"approve": True})
    expect(first).to_be_visible()
    expect(page.locator(".gates .error-message")).to_have_count(0)
    page.unroute("**/gates")
    expect(page.locator('[data-gate-id="second"]')).to_contain_text("Second?", timeout=15_000)
    expect(first).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_count(0)
    dashboard.client.post(f"/executions/{execution_id}/gates/second", json={"approve": True})
    browser_problems.clear()
